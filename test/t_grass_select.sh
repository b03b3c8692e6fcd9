# Statistical and exact unit tests of the Grass selectors (test/test_grass_select.c).
source test/lib.sh
test/bin/test_grass_select
