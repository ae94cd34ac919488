# The guest reaches a host service on 127.0.0.1 through the forward, by its /etc/hosts name,
# over several connections, and nothing that was not forwarded.
. /lib/vm/lib.sh
set -e

step "download http://devcloud:$HTTP_PORT/blob through the forward"
wget -q -O /tmp/blob "http://devcloud:$HTTP_PORT/blob"
expect_eq "$(sha256_of /tmp/blob)" "$BLOB_SHA256" "downloaded blob"
step "a second connection"
wget -q -O /tmp/blob2 "http://10.0.2.100:$HTTP_PORT/blob"
expect_eq "$(sha256_of /tmp/blob2)" "$BLOB_SHA256" "second download"
rm -f /tmp/blob /tmp/blob2

step "a port that is not forwarded is unreachable"
if timeout 5 wget -q -O /dev/null "http://10.0.2.100:$UNFORWARDED_PORT/blob"; then
	fail "10.0.2.100:$UNFORWARDED_PORT answered although it is not forwarded"
fi
step "the host's own address (10.0.2.2) is unreachable (restrict=on)"
if timeout 5 wget -q -O /dev/null "http://10.0.2.2:$HTTP_PORT/blob"; then
	fail "10.0.2.2:$HTTP_PORT answered: user networking is not restricted"
fi
