#!/bin/sh
# Stands in for the unit tests when configure found no cmocka: a skip that
# says why, never a silent pass.
echo "SKIP: the unit tests need cmocka: apt-get install libcmocka-dev, then re-run configure"
exit 77
