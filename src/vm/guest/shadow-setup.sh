# shadowSetup (nixpkgs dockerTools' helper): the files that user and group tools (useradd, adduser,
# passwd, su) need, each created only when the image lacks it. Runs chrooted in the image,
# before runAsRoot, with the guest's busybox sh.
mkdir -p /etc/pam.d
if [ ! -f /etc/passwd ]; then
  echo "root:x:0:0::/root:/bin/sh" >/etc/passwd
fi
if [ ! -f /etc/shadow ]; then
  echo "root:!x:::::::" >/etc/shadow
fi
if [ ! -f /etc/group ]; then
  echo "root:x:0:" >/etc/group
fi
if [ ! -f /etc/gshadow ]; then
  echo "root:x::" >/etc/gshadow
fi
if [ ! -f /etc/pam.d/other ]; then
  cat >/etc/pam.d/other <<PAM
account sufficient pam_unix.so
auth sufficient pam_rootok.so
password requisite pam_unix.so nullok yescrypt
session required pam_unix.so
PAM
fi
if [ ! -f /etc/login.defs ]; then
  touch /etc/login.defs
fi
