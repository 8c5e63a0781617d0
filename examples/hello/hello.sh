#!/bin/sh
# The image's command: what the build laid down and what its script added.
cat /etc/motd
echo "built at: $(cat /etc/built-by)"
echo "$(ls /bin | wc -l) commands in /bin"
