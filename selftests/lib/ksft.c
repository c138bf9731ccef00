/* SPDX-License-Identifier: MIT */
#include "ksft.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
	unsigned int plan, pass, fail, skip;
	bool header, planned;
} ksft;

static unsigned int ksft_test_num(void) { return ksft.pass + ksft.fail + ksft.skip; }

void ksft_print_header(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!getenv("KSFT_TAP_LEVEL"))
		printf("TAP version 13\n");
	ksft.header = true;
}

void ksft_set_plan(unsigned int plan)
{
	ksft.plan = plan;
	ksft.planned = true;
	printf("1..%u\n", plan);
}

static void vline(const char *prefix, const char *suffix, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void vline(const char *prefix, const char *suffix, const char *fmt, va_list ap)
{
	printf("%s", prefix);
	vprintf(fmt, ap);
	printf("%s\n", suffix);
}

void ksft_print_msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vline("# ", "", fmt, ap);
	va_end(ap);
}

static void result(const char *tap, const char *directive, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void result(const char *tap, const char *directive, const char *fmt, va_list ap)
{
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "%s %u %s", tap, ksft_test_num(), directive);
	vline(prefix, "", fmt, ap);
}

void ksft_test_result_pass(const char *fmt, ...)
{
	va_list ap;
	ksft.pass++;
	va_start(ap, fmt);
	result("ok", "", fmt, ap);
	va_end(ap);
}

void ksft_test_result_fail(const char *fmt, ...)
{
	va_list ap;
	ksft.fail++;
	va_start(ap, fmt);
	result("not ok", "", fmt, ap);
	va_end(ap);
}

void ksft_test_result_skip(const char *fmt, ...)
{
	va_list ap;
	ksft.skip++;
	va_start(ap, fmt);
	result("ok", "# SKIP ", fmt, ap);
	va_end(ap);
}

bool ksft_test_result(bool cond, const char *fmt, ...)
{
	va_list ap;
	if (cond)
		ksft.pass++;
	else
		ksft.fail++;
	va_start(ap, fmt);
	result(cond ? "ok" : "not ok", "", fmt, ap);
	va_end(ap);
	return cond;
}

int ksft_finished(void)
{
	unsigned int run = ksft_test_num();
	if (ksft.planned && run != ksft.plan)
		printf("# Planned tests != run tests (%u != %u)\n", ksft.plan, run);
	printf("# Totals: pass:%u fail:%u xfail:0 xpass:0 skip:%u error:0\n", ksft.pass,
	       ksft.fail, ksft.skip);
	if (ksft.fail || (ksft.planned && run != ksft.plan))
		return KSFT_FAIL;
	return KSFT_PASS;
}

void ksft_exit_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (!ksft.planned && ksft_test_num() == 0) {
		if (!ksft.header)
			ksft_print_header();
		vline("1..0 # SKIP ", "", fmt, ap);
	} else {
		vline("# SKIP ", "", fmt, ap);
		printf("# Totals: pass:%u fail:%u xfail:0 xpass:0 skip:%u error:0\n",
		       ksft.pass, ksft.fail, ksft.skip);
	}
	va_end(ap);
	exit(KSFT_SKIP);
}

void ksft_exit_fail_msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vline("Bail out! ", "", fmt, ap);
	va_end(ap);
	printf("# Totals: pass:%u fail:%u xfail:0 xpass:0 skip:%u error:0\n", ksft.pass,
	       ksft.fail + 1, ksft.skip);
	exit(KSFT_FAIL);
}

void ksft_assert_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	int err = errno;
	va_list ap;
	fflush(stdout);
	fprintf(stderr, "==== Test Assertion Failure ====\n  %s:%d: %s\n  pid=%d errno=%d - %s\n  ",
		file, line, expr, (int)getpid(), err, strerror(err));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(KSFT_ASSERT_EXIT);
}
