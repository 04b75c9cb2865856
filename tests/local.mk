## tests/: TAP tests run by `make check`.
##   *.test  shell drivers (tool cases, man page examples)
##   check_PROGRAMS  compiled C unit tests, also TAP
## Both go through automake's tap-driver.sh; compiled programs need
## LOG_DRIVER because TEST_LOG_DRIVER only covers the .test extension.
TEST_EXTENSIONS = .test
TAP_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
TEST_LOG_DRIVER = $(TAP_DRIVER)
LOG_DRIVER = $(TAP_DRIVER)
AM_TESTS_ENVIRONMENT = \
	top_srcdir='$(abs_top_srcdir)'; top_builddir='$(abs_top_builddir)'; \
	export top_srcdir top_builddir;

noinst_HEADERS += tests/tap.h tests/test-ids.h tests/test-cuda.h
EXTRA_DIST += tests/tool-cases.sh tests/man-examples.test tests/option-errors.test \
	tests/install.test
TESTS += tests/man-examples.test tests/option-errors.test tests/install.test
