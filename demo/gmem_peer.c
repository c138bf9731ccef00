/* SPDX-License-Identifier: MIT */
/*
 * gmem_peer: the helper process of the demo, standing in for a device model or
 * a vhost-user backend. It knows nothing about KVM or kvmlike and runs without
 * the interposer: it receives a guest_memfd fd over SCM_RIGHTS, maps it with a
 * plain mmap(MAP_SHARED), checks the demo's pattern and the punched hole,
 * writes its own pattern into the range it was given, and reports back.
 *
 * Usage (started by gmem_demo only): gmem_peer SOCKET_FD
 *
 * Every line it prints starts with "    peer:" so the demo's output stays
 * readable. Exit status 0 when the reply was sent, 1 otherwise; whether the
 * checks passed travels in the reply.
 */
#include "gmem_proto.h"

#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static struct peer_reply reply = { .magic = GMEM_PEER_MAGIC };

static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("    peer: ");
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
}

/* Records the first failure in the reply; later ones add nothing useful. */
static bool __attribute__((format(printf, 1, 2))) failed(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (reply.msg[0] == '\0')
		vsnprintf(reply.msg, sizeof(reply.msg), fmt, ap);
	va_end(ap);
	say("FAILED: %s", reply.msg);
	return false;
}

/* One request plus exactly one fd, or -1. */
static int recv_request(int sock, struct peer_request *req)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = req, .iov_len = sizeof(*req) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	if (n != (ssize_t)sizeof(*req) || req->magic != GMEM_PEER_MAGIC) {
		failed("recvmsg: %zd bytes (%s), want a %zu-byte request", n,
		       n < 0 ? strerror(errno) : "short or bad magic", sizeof(*req));
		return -1;
	}
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(int)) || (msg.msg_flags & MSG_CTRUNC)) {
		failed("the request carried no fd");
		return -1;
	}
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	return fd;
}

/* The interposer must not have followed us through execve. */
static bool check_environment(void)
{
	const char *pre = getenv("LD_PRELOAD");
	if (pre)
		return failed("started with LD_PRELOAD=%s; the demo should have removed it", pre);
	say("pid %d, no LD_PRELOAD: plain libc, no kvmlike", (int)getpid());
	return true;
}

static bool check_size(int fd, const struct peer_request *req)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return failed("fstat(fd %d): %s", fd, strerror(errno));
	if ((uint64_t)st.st_size != req->size)
		return failed("fstat size %lld, the demo says %llu", (long long)st.st_size,
			      (unsigned long long)req->size);
	say("received fd %d over SCM_RIGHTS, fstat size %lld bytes", fd, (long long)st.st_size);
	return true;
}

static bool expect(const uint8_t *map, uint64_t off, uint64_t len, uint64_t seed,
		   const char *what)
{
	int64_t bad = pattern_mismatch(map, off, len, seed);
	if (bad < 0)
		return true;
	uint64_t got;
	memcpy(&got, map + bad, sizeof(got));
	return failed("%s: offset 0x%llx holds 0x%016llx, want 0x%016llx", what,
		      (unsigned long long)bad, (unsigned long long)got,
		      (unsigned long long)pattern_word(seed, (uint64_t)bad));
}

/* The demo's layout: pattern everywhere except the hole, which reads zero. */
static bool check_contents(const uint8_t *map, const struct peer_request *req)
{
	uint64_t hole_end = req->hole_off + req->hole_len;
	if (!expect(map, 0, req->hole_off, req->seed, "pattern before the hole") ||
	    !expect(map, req->hole_off, req->hole_len, GMEM_ZERO_SEED, "punched hole") ||
	    !expect(map, hole_end, req->size - hole_end, req->seed, "pattern after the hole"))
		return false;
	say("mmap(MAP_SHARED) shows the demo's pattern and the zero hole at 0x%llx",
	    (unsigned long long)req->hole_off);
	return true;
}

static bool serve(int fd, const struct peer_request *req)
{
	if (!check_size(fd, req))
		return false;
	uint8_t *map = mmap(NULL, req->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return failed("mmap(MAP_SHARED) of fd %d: %s", fd, strerror(errno));
	bool ok = check_contents(map, req);
	if (ok) {
		pattern_fill(map, req->reply_off, req->reply_len, GMEM_PEER_SEED);
		say("wrote the PEER pattern into [0x%llx, 0x%llx)",
		    (unsigned long long)req->reply_off,
		    (unsigned long long)(req->reply_off + req->reply_len));
	}
	if (munmap(map, req->size) != 0)
		ok = failed("munmap: %s", strerror(errno));
	return ok;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	char *end = NULL;
	long sock = argc == 2 ? strtol(argv[1], &end, 10) : -1;
	if (sock < 0 || !end || *end != '\0') {
		fprintf(stderr, "usage: %s SOCKET_FD (started by gmem_demo)\n", argv[0]);
		return 2;
	}

	struct peer_request req;
	bool ok = check_environment();
	int fd = recv_request((int)sock, &req);
	if (fd >= 0) {
		ok = serve(fd, &req) && ok;
		if (close(fd) != 0)
			ok = failed("close(fd %d): %s", fd, strerror(errno));
	} else {
		ok = false;
	}

	reply.ok = ok;
	if (ok)
		snprintf(reply.msg, sizeof(reply.msg), "pattern and hole as expected, reply written");
	fflush(stdout);
	if (send((int)sock, &reply, sizeof(reply), MSG_NOSIGNAL) != (ssize_t)sizeof(reply)) {
		fprintf(stderr, "    peer: send reply: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}
