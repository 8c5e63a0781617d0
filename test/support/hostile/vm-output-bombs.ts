/**
 * VM output bombs (issue 12, "What to build"): a `runAsRoot` whose layer is the attack. Many
 * files make a layer of more entries than a layer may hold; one huge sparse file takes no room
 * in the guest but is gigabytes of zeros once written out as a tar.
 */

/** `count` empty files in one directory (busybox's seq and xargs: no loop in the shell). */
export const manyFilesScript = (count: number) => `mkdir /bomb && cd /bomb && seq 1 ${count} | xargs touch\necho made ${count} files\n`;

export const SPARSE_FILE_SCRIPT = 'truncate -s 100G /huge\nls -ls /huge\n';
