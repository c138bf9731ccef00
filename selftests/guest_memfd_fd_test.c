/* SPDX-License-Identifier: MIT */
/*
 * guest_memfd as a file descriptor: fstat, fcntl, close-on-exec, dup, fork,
 * SCM_RIGHTS, and the file outliving its VM fd (reference/conformance.md rules
 * 3, 5, 43 and the probed kernel answers of §D).
 *
 * Checks that need a host mapping of the memory use a MMAP|INIT_SHARED file;
 * when the default VM does not offer those flags they print SKIP.
 *
 * Forked children never print TAP lines: they report through shared memory
 * or a socket, and the parent prints one line per check.
 *
 * Runs unchanged against the real /dev/kvm and under the kvmlike interposer.
 */
#include "kvm_util.h"
#include "mem_util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEEP FALLOC_FL_KEEP_SIZE
#define PUNCH (FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)

#define EXEC_CHECK_ARG "--exec-check"

static size_t page_size;

/* The default VM every check uses, and the flags for "a mappable file". */
static struct {
	int vm;
	bool shared; /* the VM offers MMAP|INIT_SHARED */
	uint64_t flags; /* GMEM_FLAGS_SHARED if offered, else 0 */
} env;

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void skip_lines(unsigned int n, const char *what)
{
	for (unsigned int i = 0; i < n; i++)
		ksft_test_result_skip("%s: the default VM does not offer MMAP|INIT_SHARED", what);
}

/* ------------------------------------------------------------------------ */
/* fstat and fcntl                                                           */
/* ------------------------------------------------------------------------ */

static void test_fstat(void)
{
	const size_t size = 4 * page_size;
	int fd = gmem_create(env.vm, size, env.flags);
	struct stat st;
	TEST_ASSERT(!fstat(fd, &st), "fstat");
	bool ok = st.st_mode == (S_IFREG | 0600) && st.st_size == (off_t)size &&
		  st.st_blksize == 4096;
	if (!ok)
		ksft_print_msg("st_mode 0%o st_size %lld st_blksize %ld", st.st_mode,
			       (long long)st.st_size, (long)st.st_blksize);
	ksft_test_result(ok, "rule 5 / D: fstat: S_IFREG|0600, st_size = size, st_blksize = 4096");

	/* The memory is not accounted as file blocks, however much is populated. */
	ok = fallocate_is(fd, KEEP, 0, (off_t)size, 0);
	if (ok && env.shared) {
		uint8_t *m = map_shared(fd, size);
		ok = m != NULL;
		if (m) {
			memset(m, 0xaa, size);
			munmap(m, size);
		}
	}
	TEST_ASSERT(!fstat(fd, &st), "fstat");
	if (st.st_blocks != 0) {
		ksft_print_msg("st_blocks %lld", (long long)st.st_blocks);
		ok = false;
	}
	ksft_test_result(ok, "D: st_blocks stays 0 after fallocate%s",
			 env.shared ? " and host writes" : "");
	close(fd);
}

static void test_fcntl(void)
{
	int fd = gmem_create(env.vm, page_size, 0);

	errno = 0;
	int r = fcntl(fd, F_GETFD);
	ksft_test_result(r >= 0 && !(r & FD_CLOEXEC),
			 "rule 3: fd is not close-on-exec (F_GETFD = %s)", strres(r, errno));

	errno = 0;
	r = fcntl(fd, F_GETFL);
	ksft_test_result(r == (O_RDWR | KERNEL_O_LARGEFILE),
			 "rule 3: F_GETFL = O_RDWR|O_LARGEFILE (got %s)", strres(r, errno));

	ksft_test_result(FAILS_WITH(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), EINVAL),
			 "D: F_ADD_SEALS -> EINVAL (not a sealable file)");
	ksft_test_result(FAILS_WITH(fcntl(fd, F_GET_SEALS), EINVAL), "D: F_GET_SEALS -> EINVAL");

	errno = 0;
	r = fcntl(env.vm, F_GETFD);
	ksft_test_result(r >= 0 && (r & FD_CLOEXEC),
			 "D: the VM fd, unlike the guest_memfd fd, is close-on-exec (F_GETFD = %s)",
			 strres(r, errno));
	close(fd);
}

/*
 * The re-executed image checks that the guest_memfd fd it was given is still
 * open and is the same file (by size). Exit status: 0 ok, 1 fd closed,
 * 2 wrong size.
 */
static int exec_check(int argc, char **argv)
{
	if (argc != 4)
		return 3;
	int fd = atoi(argv[2]);
	long long size = atoll(argv[3]);
	struct stat st;
	if (fcntl(fd, F_GETFD) < 0 || fstat(fd, &st))
		return 1;
	return S_ISREG(st.st_mode) && st.st_size == size ? 0 : 2;
}

static void test_exec(void)
{
	const size_t size = 3 * page_size;
	int fd = gmem_create(env.vm, size, 0);
	char fdstr[16], sizestr[32];
	snprintf(fdstr, sizeof(fdstr), "%d", fd);
	snprintf(sizestr, sizeof(sizestr), "%zu", size);

	pid_t pid = kvm_fork();
	if (pid == 0) {
		execl("/proc/self/exe", "guest_memfd_fd_test", EXEC_CHECK_ARG, fdstr, sizestr,
		      (char *)NULL);
		_exit(127);
	}
	ksft_test_result(kvm_child_ok(pid),
			 "rule 3: the fd survives execve (same size after exec)");
	close(fd);
}

/* ------------------------------------------------------------------------ */
/* dup                                                                       */
/* ------------------------------------------------------------------------ */

static void test_dup(void)
{
	const size_t size = 4 * page_size;
	int fd = gmem_create(env.vm, size, env.flags);
	int copy = dup(fd);
	TEST_ASSERT(copy >= 0, "dup");

	struct stat a, b;
	TEST_ASSERT(!fstat(fd, &a) && !fstat(copy, &b), "fstat");
	ksft_test_result(a.st_dev == b.st_dev && a.st_ino == b.st_ino,
			 "D: dup()ed fd names the same file (same st_dev/st_ino)");

	uint8_t *m1 = NULL, *m2 = NULL;
	if (env.shared) {
		m1 = map_shared(fd, size);
		m2 = map_shared(copy, size);
		bool ok = m1 && m2;
		if (ok) {
			fill_pattern(m1, size);
			ok = is_pattern(m2, size);
		}
		ksft_test_result(ok, "D: bytes written via a mapping of one fd read back via a mapping of the dup");
	} else {
		skip_lines(1, "D: dup, write via one mapping / read via the other");
	}

	/* The file lives on in the dup (and in mappings) after the original closes. */
	close(fd);
	bool ok = fallocate_is(copy, PUNCH, 0, (off_t)page_size, 0) &&
		  fallocate_is(copy, KEEP, 0, (off_t)size, 0);
	if (ok && m2)
		ok = bytes_are(m2, page_size, 0) && is_pattern(m2 + page_size, page_size) &&
		     bytes_are(m1, page_size, 0);
	ksft_test_result(ok, "D: after closing the original, PUNCH/KEEP via the dup work%s",
			 m2 ? " and every mapping sees the hole" : "");
	if (m1)
		munmap(m1, size);
	if (m2)
		munmap(m2, size);
	close(copy);
}

/* ------------------------------------------------------------------------ */
/* fork                                                                      */
/* ------------------------------------------------------------------------ */

/* What the forked child saw; in a MAP_SHARED anonymous page. */
struct fork_report {
	int done;
	int same_inode;
	int mapped_ok;	  /* mapped the fd, saw the parent's 0xaa */
	int punch_rc, punch_err;
	int vm_errno[4];  /* CHECK_EXTENSION, CREATE_GUEST_MEMFD, SET_USER_MEMORY_REGION2, CREATE_VCPU */
	int api_version, gmem_cap;
	int own_vm, own_gmem; /* fd or -errno */
};

static const char *const vm_ioctl_names[4] = {
	"KVM_CHECK_EXTENSION", "KVM_CREATE_GUEST_MEMFD", "KVM_SET_USER_MEMORY_REGION2",
	"KVM_CREATE_VCPU",
};

static int errno_of(long r) { return r < 0 ? errno : 0; }

static void fork_child(struct fork_report *rep, int kvm, int fd, ino_t ino, size_t size)
{
	struct stat st;
	rep->same_inode = !fstat(fd, &st) && st.st_ino == ino;

	if (env.shared) {
		uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m != MAP_FAILED) {
			rep->mapped_ok = m[0] == 0xaa && m[size - 1] == 0xaa;
			memset(m + page_size, 0x55, page_size);
			munmap(m, size);
		}
	}
	errno = 0;
	rep->punch_rc = fallocate(fd, PUNCH, 2 * (off_t)page_size, (off_t)page_size);
	rep->punch_err = errno;

	/* The VM belongs to the parent's mm: every VM-fd ioctl fails with EIO. */
	struct kvm_create_guest_memfd cgm = { .size = page_size };
	struct kvm_userspace_memory_region2 region = {
		.slot = 0, .flags = KVM_MEM_GUEST_MEMFD, .memory_size = page_size,
		.guest_memfd = (uint32_t)fd,
	};
	rep->vm_errno[0] = errno_of(ioctl(env.vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD));
	rep->vm_errno[1] = errno_of(ioctl(env.vm, KVM_CREATE_GUEST_MEMFD, &cgm));
	rep->vm_errno[2] = errno_of(ioctl(env.vm, KVM_SET_USER_MEMORY_REGION2, &region));
	rep->vm_errno[3] = errno_of(ioctl(env.vm, KVM_CREATE_VCPU, 0));

	/* /dev/kvm is not tied to an mm: it keeps working, and so does a new VM. */
	rep->api_version = ioctl(kvm, KVM_GET_API_VERSION, 0);
	rep->gmem_cap = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD);
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	rep->own_vm = vm >= 0 ? vm : -errno;
	if (vm >= 0) {
		int g = __gmem_create(vm, page_size, 0);
		rep->own_gmem = g >= 0 ? g : -errno;
	}
	rep->done = 1;
}

static void test_fork(void)
{
	const size_t size = 4 * page_size;
	int kvm = kvm_open();
	int fd = gmem_create(env.vm, size, env.flags);
	struct stat st;
	TEST_ASSERT(!fstat(fd, &st), "fstat");

	uint8_t *m = NULL;
	if (env.shared) {
		m = map_shared(fd, size);
		TEST_ASSERT(m, "map a MMAP|INIT_SHARED file");
		memset(m, 0xaa, size);
	}
	struct fork_report *rep = map_anon(sizeof(*rep), PROT_READ | PROT_WRITE, MAP_SHARED);
	memset(rep, 0, sizeof(*rep));

	pid_t pid = kvm_fork();
	if (pid == 0) {
		fork_child(rep, kvm, fd, st.st_ino, size);
		_exit(0);
	}
	bool exited = kvm_child_ok(pid) && rep->done;

	ksft_test_result(exited && rep->same_inode,
			 "rule 3 / D: the fd is inherited over fork (child's fstat: same inode)");
	if (env.shared) {
		bool ok = exited && rep->mapped_ok && bytes_are(m + page_size, page_size, 0x55);
		ksft_test_result(ok, "D: the child maps the inherited fd, sees the parent's bytes, its writes reach the parent");
		ok = exited && rep->punch_rc == 0 && bytes_are(m + 2 * page_size, page_size, 0) &&
		     bytes_are(m + 3 * page_size, page_size, 0xaa);
		ksft_test_result(ok, "D: the child's PUNCH_HOLE is seen by the parent (page reads 0)");
	} else {
		skip_lines(2, "D: child mmap/punch seen by the parent");
	}

	bool ok = exited;
	for (int i = 0; i < 4 && exited; i++) {
		if (rep->vm_errno[i] != EIO) {
			ksft_print_msg("%s in the child: errno %s, want EIO", vm_ioctl_names[i],
				       rep->vm_errno[i] ? strerrorname_np(rep->vm_errno[i]) : "none (success)");
			ok = false;
		}
	}
	ksft_test_result(ok, "D: VM-fd ioctls in a forked child -> EIO (CHECK_EXTENSION, CREATE_GUEST_MEMFD, SET_USER_MEMORY_REGION2, CREATE_VCPU)");

	ok = exited && rep->api_version == KVM_API_VERSION && rep->gmem_cap > 0;
	if (exited && !ok)
		ksft_print_msg("API version %d, KVM_CAP_GUEST_MEMFD %d", rep->api_version,
			       rep->gmem_cap);
	ksft_test_result(ok, "D: /dev/kvm ioctls in the child still work (API version 12, CAP_GUEST_MEMFD)");

	ok = exited && rep->own_vm >= 0 && rep->own_gmem >= 0;
	if (exited && !ok)
		ksft_print_msg("child's KVM_CREATE_VM %d, KVM_CREATE_GUEST_MEMFD %d (fd or -errno)",
			       rep->own_vm, rep->own_gmem);
	ksft_test_result(ok, "D: the child can create its own VM and a guest_memfd on it");

	munmap(rep, sizeof(*rep));
	if (m)
		munmap(m, size);
	close(fd);
	close(kvm);
}

/* ------------------------------------------------------------------------ */
/* SCM_RIGHTS                                                                */
/* ------------------------------------------------------------------------ */

struct scm_report {
	int got_fd;
	int map_errno;
	long long st_size;
	int saw_pattern;
};

static int recv_fd(int sock)
{
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	if (recvmsg(sock, &msg, 0) != 1)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	return fd;
}

static bool send_fd(int sock, int fd)
{
	char byte = 'g';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(fd));
	return sendmsg(sock, &msg, 0) == 1;
}

/*
 * The receiver knows nothing about KVM: it gets an fd and maps it with plain
 * mmap(MAP_SHARED), as a device-emulation helper would. It was forked before
 * the file existed, so the socket is its only way to the file.
 */
static void scm_receiver(int sock, void *arg)
{
	(void)arg;
	struct scm_report rep = { 0 };
	int fd = recv_fd(sock);
	struct stat st;
	rep.got_fd = fd >= 0;
	if (fd >= 0 && !fstat(fd, &st)) {
		rep.st_size = st.st_size;
		size_t len = (size_t)st.st_size;
		uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED) {
			rep.map_errno = errno;
		} else {
			rep.saw_pattern = 1;
			for (size_t i = 0; i < page_size; i++)
				rep.saw_pattern &= m[i] == pattern_byte(i);
			memset(m + page_size, 0xc3, len - page_size);
			munmap(m, len);
		}
	}
	if (write(sock, &rep, sizeof(rep)) != sizeof(rep))
		_exit(1);
	_exit(0);
}

#define SCM_LINES 3
static void test_scm_rights(void)
{
	if (!env.shared) {
		skip_lines(SCM_LINES, "D: SCM_RIGHTS receiver maps the file");
		return;
	}
	const size_t size = 4 * page_size;
	int sock;
	pid_t pid = kvm_fork_connected(scm_receiver, NULL, &sock);

	int fd = gmem_create(env.vm, size, env.flags);
	uint8_t *m = map_shared(fd, size);
	TEST_ASSERT(m, "map a MMAP|INIT_SHARED file");
	fill_pattern(m, page_size);
	struct scm_report rep = { 0 };
	bool sent = send_fd(sock, fd);
	bool got = sent && read(sock, &rep, sizeof(rep)) == sizeof(rep);
	bool exited = kvm_child_ok(pid) && got;
	close(sock);

	ksft_test_result(exited && rep.got_fd && rep.st_size == (long long)size,
			 "D: guest_memfd passed with SCM_RIGHTS: receiver's fstat st_size = %lld (want %zu)",
			 rep.st_size, size);
	if (rep.map_errno)
		ksft_print_msg("receiver's mmap: %s", strerrorname_np(rep.map_errno));
	ksft_test_result(exited && rep.saw_pattern,
			 "D: receiver's plain mmap(MAP_SHARED) sees the sender's bytes");
	ksft_test_result(exited && bytes_are(m + page_size, size - page_size, 0xc3),
			 "D: receiver's writes are visible through the sender's mapping");
	munmap(m, size);
	close(fd);
}

/* ------------------------------------------------------------------------ */
/* the file outlives the VM fd                                               */
/* ------------------------------------------------------------------------ */

static void test_vm_closed(void)
{
	const size_t size = 4 * page_size;
	int vm = vm_create(KVM_X86_DEFAULT_VM);
	int fd = gmem_create(vm, size, env.flags);
	uint8_t *m = NULL;
	if (env.shared) {
		m = map_shared(fd, size);
		TEST_ASSERT(m, "map a MMAP|INIT_SHARED file");
		fill_pattern(m, size);
	}
	close(vm);

	bool ok = fallocate_is(fd, PUNCH, 3 * (off_t)page_size, (off_t)page_size, 0) &&
		  fallocate_is(fd, KEEP, 0, (off_t)size, 0);
	ksft_test_result(ok, "rule 3/43: after close(VM fd), fallocate PUNCH and KEEP on the guest_memfd -> ok");

	if (m) {
		uint8_t *m2 = map_shared(fd, size);
		ok = is_pattern(m, 3 * page_size) && m2 && is_pattern(m2, 3 * page_size) &&
		     bytes_are(m2 + 3 * page_size, page_size, 0);
		if (m2) {
			m2[0] = 0x11;
			ok = ok && m[0] == 0x11;
			munmap(m2, size);
		}
		munmap(m, size);
		ksft_test_result(ok, "rule 3/43: after close(VM fd), old and new mappings share the retained bytes");
	} else {
		skip_lines(1, "rule 3/43: mappings after close(VM fd)");
	}
	close(fd);
}

/* ------------------------------------------------------------------------ */

#define PLAN (2 /* fstat */ + 5 /* fcntl */ + 1 /* exec */ + 3 /* dup */ + 6 /* fork */ + \
	      SCM_LINES + 2 /* VM closed */ + 1 /* leaks */)

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], EXEC_CHECK_ARG))
		return exec_check(argc, argv);

	page_size = (size_t)sysconf(_SC_PAGESIZE);
	ksft_print_header();
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_GUEST_MEMFD) > 0);

	env.vm = vm_create(KVM_X86_DEFAULT_VM);
	env.flags = vm_gmem_shared_flags(env.vm);
	env.shared = env.flags != 0;
	ksft_print_msg("backend %s, mappable files: %s", kvm_backend_name(),
		       env.shared ? "yes" : "no");
	ksft_set_plan(PLAN);

	test_fstat();
	test_fcntl();
	test_exec();
	test_dup();
	test_fork();
	test_scm_rights();
	test_vm_closed();
	close(env.vm);

	kvm_test_live_objects();
	return ksft_finished();
}
