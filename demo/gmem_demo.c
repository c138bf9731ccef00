/* SPDX-License-Identifier: MIT */
/*
 * gmem_demo: kvmlike's main job, end to end, through nothing but the KVM ABI.
 *
 *   1. open /dev/kvm, check the API version and the guest_memfd caps, create a
 *      default VM;
 *   2. create an 8 MiB guest_memfd (MMAP|INIT_SHARED) and mmap it MAP_SHARED;
 *   3. bind two memslots to it (gmem [0,4M) at GPA 0, gmem [4M,8M) at GPA 1 GiB)
 *      whose userspace_addr is the guest_memfd's own mapping;
 *   4. populate it, write a pattern, punch one page and read it back as zero;
 *   5. hand the fd to gmem_peer (exec'd without the interposer) over
 *      SCM_RIGHTS; the peer maps it with plain mmap, checks it and writes a
 *      reply the demo then sees through its own mapping;
 *   6. close everything, then do it again with a fresh VM and guest_memfd per
 *      round, in orders that leave different objects holding the memory last;
 *   7. check nothing is left.
 *
 * Under kvmlike (KVMLIKE_PROBE answers) every step is followed by kvmlike's
 * refcount table (KVMLIKE_DEBUG_OBJECTS); a round that leaves objects behind,
 * or a non-empty table at the end, fails the demo. Against the real kernel
 * (--kernel, or when the probe is refused) the same steps run without tables.
 *
 * Exit status: 0 when every step did what Linux does, 1 otherwise (with the
 * reason on stderr), 2 on a usage error.
 */
#include "demo_util.h"
#include "gmem_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024ULL * 1024)
#define GiB (1024 * MiB)
#define GMEM_SIZE (8 * MiB)
#define SLOT_SIZE (4 * MiB)
#define NR_SLOTS 2
#define SHARED_FLAGS (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)
#define KEEP FALLOC_FL_KEEP_SIZE
#define PUNCH (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

/* The two memslots every VM of the demo gets, both backed by one guest_memfd. */
static const struct slot_layout {
	uint32_t slot;
	uint64_t gpa;
	uint64_t gmem_off;
} layout[NR_SLOTS] = {
	{ 0, 0, 0 },
	{ 1, 1 * GiB, SLOT_SIZE },
};

/* Offsets inside the guest_memfd used by steps 4 and 5 (one page each). */
#define HOLE_OFF (1 * MiB)              /* in slot 0: GPA 0x100000 */
#define REPLY_OFF (SLOT_SIZE + 2 * MiB) /* in slot 1: GPA 1 GiB + 2 MiB */

static struct {
	bool kvmlike; /* KVMLIKE_PROBE answered: print the refcount table */
	int kvm;      /* /dev/kvm fd; the table is read through it */
	uint64_t page;
	bool leaked;  /* a round left objects behind (reported, fails at the end) */
} demo = { .kvm = -1 };

/* One VM, its guest_memfd, the mapping and the slots; -1 / NULL once closed. */
struct guest {
	int vm;
	int gmem;
	uint8_t *map;
	/* What each slot was bound with: deleting resends it with memory_size 0,
	 * as VMMs do, even after the gmem fd or the mapping is gone. */
	struct kvm_userspace_memory_region2 region[NR_SLOTS];
};

/* ------------------------------------------------------------------------ */
/* failing loudly                                                            */
/* ------------------------------------------------------------------------ */

const char demo_prog[] = "gmem_demo";

static void expect_range(const uint8_t *map, uint64_t off, uint64_t len, uint64_t seed,
			 const char *what)
{
	int64_t bad = pattern_mismatch(map, off, len, seed);
	if (bad < 0)
		return;
	uint64_t got;
	memcpy(&got, map + bad, sizeof(got));
	fail("%s: gmem offset 0x%llx reads 0x%016llx, want 0x%016llx", what,
	     (unsigned long long)bad, (unsigned long long)got,
	     (unsigned long long)pattern_word(seed, (uint64_t)bad));
}

/* ------------------------------------------------------------------------ */
/* kvmlike's refcount table                                                  */
/* ------------------------------------------------------------------------ */

static const struct kvmlike_obj_info *find_object(const struct objects *o, uint32_t kind,
						  uint64_t id)
{
	for (uint32_t i = 0; i < o->nr; i++)
		if (o->v[i].kind == kind && o->v[i].id == id)
			return &o->v[i];
	return NULL;
}

/* A slot names its file by id; the file's row says whether it was released,
 * which is what makes the slot severed rather than bound. */
static void describe_slot(const struct objects *all, const struct kvmlike_obj_info *o, char *buf,
			  size_t len)
{
	unsigned long long vm = o->parent, pages = o->pages, file = o->aux;
	const struct kvmlike_obj_info *f = find_object(all, KVMLIKE_OBJ_FILE, file);
	const char *state = !file       ? "no file"
			    : !f        ? "file missing from the table!"
			    : f->aux    ? "severed: holds released file"
					: "bound to file";
	if (file)
		snprintf(buf, len, "of vm %llu, %llu pages, %s %llu", vm, pages, state, file);
	else
		snprintf(buf, len, "of vm %llu, %llu pages, %s", vm, pages, state);
}

/* The columns mean different things per kind (kvmlike_ext.h); spell them out. */
static void describe(const struct objects *all, const struct kvmlike_obj_info *o, char *buf,
		     size_t len)
{
	switch (o->kind) {
	case KVMLIKE_OBJ_VM:
		snprintf(buf, len, "type %llu, %lld fd(s), %lld object ref(s)",
			 (unsigned long long)o->aux, (long long)o->users, (long long)o->refs);
		break;
	case KVMLIKE_OBJ_MEMSLOT:
		describe_slot(all, o, buf, len);
		break;
	case KVMLIKE_OBJ_INODE:
		snprintf(buf, len, "%lld file(s), %llu pages present", (long long)o->users,
			 (unsigned long long)o->pages);
		break;
	case KVMLIKE_OBJ_FILE:
		snprintf(buf, len, "of vm %llu on inode %llu, %lld fd(s)+mapping(s), %lld ref(s), %s",
			 (unsigned long long)o->parent, (unsigned long long)o->pages,
			 (long long)o->users, (long long)o->refs, o->aux ? "released" : "open");
		break;
	default:
		snprintf(buf, len, "unknown kind %u", o->kind);
	}
}

static void print_objects(const struct objects *o)
{
	if (o->nr == 0) {
		printf("        (no live objects)\n");
		return;
	}
	printf("        %-8s %5s %6s %5s %7s %6s %4s  %s\n", "kind", "id", "users", "refs",
	       "parent", "pages", "aux", "meaning");
	for (uint32_t i = 0; i < o->nr; i++) {
		const struct kvmlike_obj_info *e = &o->v[i];
		char id[16], what[160];
		if (e->kind == KVMLIKE_OBJ_MEMSLOT) /* id = address space << 16 | slot */
			snprintf(id, sizeof(id), "%u:%u", e->id >> 16, e->id & 0xffff);
		else
			snprintf(id, sizeof(id), "%u", e->id);
		describe(o, e, what, sizeof(what));
		printf("        %-8s %5s %6lld %5lld %7llu %6llu %4llu  %s\n", kind_name(e->kind), id,
		       (long long)e->users, (long long)e->refs, (unsigned long long)e->parent,
		       (unsigned long long)e->pages, (unsigned long long)e->aux, what);
	}
}

/* One line per step; under kvmlike the table follows it. */
static void __attribute__((format(printf, 2, 3))) step(const char *label, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("step %s: ", label);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	if (demo.kvmlike) {
		struct objects o = read_objects(demo.kvm);
		print_objects(&o);
		free(o.v);
	}
}

/* Snapshot at the start of a round (empty under the kernel). */
static struct objects round_begin(void)
{
	struct objects none = { 0, NULL };
	return demo.kvmlike ? read_objects(demo.kvm) : none;
}

/*
 * A round closed everything it created: any object live now that was not live
 * when it began is a leak. Reported here and failed at the end, so later
 * rounds still run and show whether the leak is specific to one order.
 */
static void round_end(const char *round, struct objects *before)
{
	if (demo.kvmlike) {
		struct objects now = read_objects(demo.kvm);
		uint32_t left = 0;
		for (uint32_t i = 0; i < now.nr; i++)
			left += !find_object(before, now.v[i].kind, now.v[i].id);
		if (left) {
			printf("    LEAK: %s left %u object(s) behind\n", round, left);
			demo.leaked = true;
		} else {
			printf("    %s left nothing behind\n", round);
		}
		free(now.v);
	}
	free(before->v);
}

/* ------------------------------------------------------------------------ */
/* KVM objects                                                               */
/* ------------------------------------------------------------------------ */

static int open_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		fail("open /dev/kvm: no such device here; run scripts/demo.sh without --kernel to use kvmlike");
	return (int)check(fd, "open /dev/kvm");
}

static int check_cap(int fd, long cap, const char *name)
{
	char what[80];
	snprintf(what, sizeof(what), "KVM_CHECK_EXTENSION(%s)", name);
	return (int)check(ioctl(fd, KVM_CHECK_EXTENSION, cap), what);
}

/* A default VM that offers mappable, initially shared guest_memfds. */
static int create_vm(void)
{
	int vm = (int)check(ioctl(demo.kvm, KVM_CREATE_VM, KVM_X86_DEFAULT_VM),
			    "KVM_CREATE_VM(KVM_X86_DEFAULT_VM)");
	int flags = check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS, "GUEST_MEMFD_FLAGS on the VM fd");
	if (((unsigned)flags & SHARED_FLAGS) != SHARED_FLAGS)
		fail("the default VM offers guest_memfd flags 0x%x; the demo needs MMAP|INIT_SHARED (0x%llx)",
		     flags, (unsigned long long)SHARED_FLAGS);
	return vm;
}

static int create_gmem(int vm)
{
	struct kvm_create_guest_memfd args = { .size = GMEM_SIZE, .flags = SHARED_FLAGS };
	return (int)check(ioctl(vm, KVM_CREATE_GUEST_MEMFD, &args),
			  "KVM_CREATE_GUEST_MEMFD(8 MiB, MMAP|INIT_SHARED)");
}

static uint8_t *map_gmem(int gmem)
{
	void *p = mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, gmem, 0);
	if (p == MAP_FAILED)
		fail("mmap(guest_memfd, 8 MiB, MAP_SHARED): %s", strerror(errno));
	return p;
}

/* Slot i of the layout: gmem [gmem_off, +4M) at its GPA, seen by the host
 * through the guest_memfd's own mapping at the same offset. */
static void bind_slot(struct guest *g, int i)
{
	const struct slot_layout *l = &layout[i];
	struct kvm_userspace_memory_region2 r = {
		.slot = l->slot,
		.flags = KVM_MEM_GUEST_MEMFD,
		.guest_phys_addr = l->gpa,
		.memory_size = SLOT_SIZE,
		.userspace_addr = (uintptr_t)(g->map + l->gmem_off),
		.guest_memfd_offset = l->gmem_off,
		.guest_memfd = (uint32_t)g->gmem,
	};
	char what[96];
	snprintf(what, sizeof(what), "KVM_SET_USER_MEMORY_REGION2(bind slot %u, KVM_MEM_GUEST_MEMFD)",
		 l->slot);
	check(ioctl(g->vm, KVM_SET_USER_MEMORY_REGION2, &r), what);
	g->region[i] = r;
}

static void delete_slot(struct guest *g, int i)
{
	struct kvm_userspace_memory_region2 r = g->region[i];
	r.memory_size = 0;
	char what[80];
	snprintf(what, sizeof(what), "KVM_SET_USER_MEMORY_REGION2(delete slot %u)", r.slot);
	check(ioctl(g->vm, KVM_SET_USER_MEMORY_REGION2, &r), what);
}

static void bind_slots(struct guest *g)
{
	for (int i = 0; i < NR_SLOTS; i++)
		bind_slot(g, i);
}

static void delete_slots(struct guest *g)
{
	for (int i = 0; i < NR_SLOTS; i++)
		delete_slot(g, i);
}

static void populate(struct guest *g)
{
	check(fallocate(g->gmem, KEEP, 0, GMEM_SIZE), "fallocate(KEEP_SIZE, 0, 8 MiB)");
}

static void close_vm(struct guest *g)
{
	check(close(g->vm), "close(VM fd)");
	g->vm = -1;
}

static void close_gmem(struct guest *g)
{
	check(close(g->gmem), "close(guest_memfd fd)");
	g->gmem = -1;
}

static void unmap(struct guest *g)
{
	check(munmap(g->map, GMEM_SIZE), "munmap(guest_memfd mapping)");
	g->map = NULL;
}

/* A fresh VM with everything steps 1-4 build, for one close-order round. */
static void guest_setup(struct guest *g)
{
	g->vm = create_vm();
	g->gmem = create_gmem(g->vm);
	g->map = map_gmem(g->gmem);
	bind_slots(g);
	populate(g);
	pattern_fill(g->map, 0, GMEM_SIZE, GMEM_DEMO_SEED);
}

/* ------------------------------------------------------------------------ */
/* the helper process                                                        */
/* ------------------------------------------------------------------------ */

/* gmem_peer sits next to this program. */
static void peer_path(char *buf, size_t len)
{
	ssize_t n = check(readlink("/proc/self/exe", buf, len - 1), "readlink(/proc/self/exe)");
	buf[n] = '\0';
	char *slash = strrchr(buf, '/');
	size_t dir = slash ? (size_t)(slash - buf) + 1 : 0;
	if (dir + sizeof("gmem_peer") > len)
		fail("path of gmem_peer too long");
	memcpy(buf + dir, "gmem_peer", sizeof("gmem_peer"));
	if (access(buf, X_OK) != 0)
		fail("%s: %s (build the demo targets)", buf, strerror(errno));
}

/* Our environment minus LD_PRELOAD, built before fork: the peer must run
 * without the interposer, and with everything else we had. */
static char **environment_without_preload(void)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 1, sizeof(*env));
	if (!env)
		fail("out of memory for the peer's environment");
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", strlen("LD_PRELOAD=")) != 0)
			env[k++] = environ[i];
	return env;
}

static void __attribute__((noreturn)) exec_peer(char *path, int sock, char **env)
{
	/* The peer should hold only what it is handed: every inherited fd (the
	 * guest_memfd is not close-on-exec) closes at execve, except the socket. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0 || fcntl(sock, F_SETFD, 0) != 0) {
		dprintf(2, "gmem_demo: preparing the peer's fds: %s\n", strerror(errno));
		_exit(127);
	}
	char arg[16];
	snprintf(arg, sizeof(arg), "%d", sock);
	char *argv[] = { path, arg, NULL };
	execve(path, argv, env);
	dprintf(2, "gmem_demo: execve %s: %s\n", path, strerror(errno));
	_exit(127);
}

static pid_t spawn_peer(int sock)
{
	char path[PATH_MAX];
	peer_path(path, sizeof(path));
	char **env = environment_without_preload();
	fflush(stdout); /* so the child's copy of the buffer is empty */
	pid_t pid = (pid_t)check(fork(), "fork");
	if (pid == 0)
		exec_peer(path, sock, env);
	free(env);
	return pid;
}

static void send_request(int sock, int fd, const struct peer_request *req)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct iovec iov = { .iov_base = (void *)req, .iov_len = sizeof(*req) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c)
		fail("no room for the SCM_RIGHTS header");
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(fd));
	/* MSG_NOSIGNAL: a peer that died early is a failure to report, not SIGPIPE. */
	ssize_t n = check(sendmsg(sock, &msg, MSG_NOSIGNAL), "sendmsg(gmem fd, SCM_RIGHTS)");
	if (n != (ssize_t)sizeof(*req))
		fail("sendmsg sent %zd of %zu bytes", n, sizeof(*req));
}

static void recv_reply(int sock, struct peer_reply *rep)
{
	ssize_t n = check(recv(sock, rep, sizeof(*rep), 0), "recv(peer reply)");
	if (n == 0)
		fail("the peer closed its socket without replying");
	if (n != (ssize_t)sizeof(*rep) || rep->magic != GMEM_PEER_MAGIC)
		fail("malformed peer reply (%zd bytes)", n);
	rep->msg[sizeof(rep->msg) - 1] = '\0';
}

static void reap_peer(pid_t pid)
{
	int status;
	check(waitpid(pid, &status, 0), "waitpid(peer)");
	if (WIFSIGNALED(status))
		fail("the peer died of signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail("the peer exited with status %d", WEXITSTATUS(status));
}

/* ------------------------------------------------------------------------ */
/* steps 1-5                                                                 */
/* ------------------------------------------------------------------------ */

static void step1_open(struct guest *g, bool kernel_only)
{
	const char *backend = "Linux KVM (--kernel: not probed)";
	demo.kvm = open_kvm();
	if (!kernel_only)
		demo.kvmlike = probe_kvmlike(demo.kvm, &backend);
	int api = (int)check(ioctl(demo.kvm, KVM_GET_API_VERSION, 0), "KVM_GET_API_VERSION");
	if (api != KVM_API_VERSION)
		fail("KVM_GET_API_VERSION = %d, want %d", api, KVM_API_VERSION);
	int gmem = check_cap(demo.kvm, KVM_CAP_GUEST_MEMFD, "GUEST_MEMFD");
	int mem2 = check_cap(demo.kvm, KVM_CAP_USER_MEMORY2, "USER_MEMORY2");
	int flags = check_cap(demo.kvm, KVM_CAP_GUEST_MEMFD_FLAGS, "GUEST_MEMFD_FLAGS");
	if (gmem <= 0 || mem2 <= 0)
		fail("guest_memfd needs KVM_CAP_GUEST_MEMFD and KVM_CAP_USER_MEMORY2 (got %d, %d)",
		     gmem, mem2);
	g->vm = create_vm();
	printf("backend: %s\n", backend);
	step("1", "opened /dev/kvm: API %d, GUEST_MEMFD=%d, USER_MEMORY2=%d, GUEST_MEMFD_FLAGS=0x%x "
		  "(MMAP|INIT_SHARED); created a default VM (fd %d)",
	     api, gmem, mem2, flags, g->vm);
}

static void step2_gmem(struct guest *g)
{
	g->gmem = create_gmem(g->vm);
	g->map = map_gmem(g->gmem);
	step("2", "created an 8 MiB guest_memfd with MMAP|INIT_SHARED (fd %d) and mmap'd it MAP_SHARED at %p",
	     g->gmem, (void *)g->map);
}

static void step3_slots(struct guest *g)
{
	bind_slots(g);
	step("3", "bound slot 0 (gmem [0,4M) at GPA 0) and slot 1 (gmem [4M,8M) at GPA 1 GiB) with "
		  "KVM_SET_USER_MEMORY_REGION2 + KVM_MEM_GUEST_MEMFD, userspace_addr = the gmem mapping");
}

static void step4_memory(struct guest *g)
{
	populate(g);
	step("4.1", "fallocate(KEEP_SIZE, 0, 8 MiB): all %llu pages allocated",
	     (unsigned long long)(GMEM_SIZE / demo.page));

	pattern_fill(g->map, 0, GMEM_SIZE, GMEM_DEMO_SEED);
	expect_range(g->map, 0, GMEM_SIZE, GMEM_DEMO_SEED, "pattern read back");
	step("4.2", "wrote the GMEM pattern through the mapping over both slots and read it back");

	check(fallocate(g->gmem, PUNCH, HOLE_OFF, demo.page), "fallocate(PUNCH_HOLE|KEEP_SIZE, one page)");
	step("4.3", "punched the page at gmem 0x%llx (GPA 0x%llx, slot 0)", (unsigned long long)HOLE_OFF,
	     (unsigned long long)(layout[0].gpa + HOLE_OFF));

	/* Reading the hole faults a fresh zeroed page in, as guest_memfd does. */
	expect_range(g->map, HOLE_OFF, demo.page, GMEM_ZERO_SEED, "punched page");
	expect_range(g->map, 0, HOLE_OFF, GMEM_DEMO_SEED, "pattern before the hole");
	expect_range(g->map, HOLE_OFF + demo.page, GMEM_SIZE - HOLE_OFF - demo.page, GMEM_DEMO_SEED,
		     "pattern after the hole");
	step("4.4", "the punched page reads back zero (a fresh page), the other %llu keep the pattern",
	     (unsigned long long)(GMEM_SIZE / demo.page - 1));
}

static void step5_peer(struct guest *g)
{
	int sv[2];
	/* SEQPACKET: each message arrives whole; CLOEXEC: the peer gets only its end. */
	check(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), "socketpair");
	pid_t pid = spawn_peer(sv[1]);
	check(close(sv[1]), "close(the peer's socket end)");
	step("5.1", "fork+execve'd gmem_peer (pid %d) without LD_PRELOAD; sending it gmem fd %d "
		    "and its size over SCM_RIGHTS",
	     (int)pid, g->gmem);

	struct peer_request req = {
		.magic = GMEM_PEER_MAGIC, .size = GMEM_SIZE, .seed = GMEM_DEMO_SEED,
		.hole_off = HOLE_OFF, .hole_len = demo.page,
		.reply_off = REPLY_OFF, .reply_len = demo.page,
	};
	struct peer_reply rep;
	send_request(sv[0], g->gmem, &req);
	recv_reply(sv[0], &rep);
	reap_peer(pid);
	check(close(sv[0]), "close(socket)");
	if (!rep.ok)
		fail("the peer reported: %s", rep.msg);

	expect_range(g->map, REPLY_OFF, demo.page, GMEM_PEER_SEED, "the peer's write seen by the demo");
	expect_range(g->map, HOLE_OFF, demo.page, GMEM_ZERO_SEED, "hole after the peer");
	expect_range(g->map, REPLY_OFF + demo.page, GMEM_SIZE - REPLY_OFF - demo.page, GMEM_DEMO_SEED,
		     "pattern after the peer's page");
	step("5.2", "peer exited 0 (\"%s\"); its write at gmem 0x%llx (GPA 0x%llx, slot 1) "
		    "shows through the demo's own mapping",
	     rep.msg, (unsigned long long)REPLY_OFF,
	     (unsigned long long)(layout[1].gpa + REPLY_OFF - layout[1].gmem_off));
}

/* ------------------------------------------------------------------------ */
/* step 6: closing in several orders                                         */
/* ------------------------------------------------------------------------ */

/* The objects of steps 1-5, in the order a VMM usually tears down. */
static void close_main(struct guest *g)
{
	struct objects none = { 0, NULL };
	delete_slots(g);
	step("6.1", "steps 1-5's VM: deleted slots 0 and 1 (memory_size 0)");
	unmap(g);
	step("6.2", "munmap'd the guest_memfd mapping");
	close_gmem(g);
	step("6.3", "closed the guest_memfd fd");
	close_vm(g);
	step("6.4", "closed the VM fd");
	round_end("steps 1-5", &none);
}

/* (a) the gmem fd goes first while slots are bound; the mapping keeps the file in use. */
static void round_a(void)
{
	struct objects before = round_begin();
	struct guest g;
	guest_setup(&g);
	step("6a.0", "round (a): fresh VM fd %d, gmem fd %d mapped, slots 0+1 bound, pattern written",
	     g.vm, g.gmem);
	close_gmem(&g);
	expect_range(g.map, 0, GMEM_SIZE, GMEM_DEMO_SEED, "round (a): mapping after close(gmem)");
	step("6a.1", "closed the gmem fd with both slots bound: ok; the mapping still reads the pattern");
	unmap(&g);
	step("6a.2", "munmap'd: the gmem file's last fd/mapping is gone, its slots are severed");
	delete_slots(&g);
	step("6a.3", "deleted both severed slots: ok");
	close_vm(&g);
	step("6a.4", "closed the VM fd");
	round_end("round (a)", &before);
}

/* (b) the VM fd goes first; the gmem fd keeps working without it (rule 43). */
static void round_b(void)
{
	struct objects before = round_begin();
	struct guest g;
	guest_setup(&g);
	step("6b.0", "round (b): fresh VM fd %d, gmem fd %d mapped, slots 0+1 bound, pattern written",
	     g.vm, g.gmem);
	close_vm(&g);
	expect_range(g.map, 0, GMEM_SIZE, GMEM_DEMO_SEED, "round (b): mapping after close(VM)");
	step("6b.1", "closed the VM fd while the gmem fd and mapping live; the mapping still reads the pattern");
	check(fallocate(g.gmem, PUNCH, 0, GMEM_SIZE), "round (b): fallocate(PUNCH_HOLE|KEEP_SIZE, 0, 8 MiB) after close(VM)");
	check(fallocate(g.gmem, KEEP, 0, GMEM_SIZE), "round (b): fallocate(KEEP_SIZE, 0, 8 MiB) after close(VM)");
	expect_range(g.map, 0, GMEM_SIZE, GMEM_ZERO_SEED, "round (b): mapping after punch + re-allocate");
	step("6b.2", "fallocate(PUNCH_HOLE|KEEP_SIZE) then fallocate(KEEP_SIZE) over all 8 MiB without "
		     "the VM fd: ok (rule 43); the mapping reads zero");
	unmap(&g);
	step("6b.3", "munmap'd the mapping");
	close_gmem(&g);
	step("6b.4", "closed the gmem fd");
	round_end("round (b)", &before);
}

/* (c) the mapping goes first, then the VM (its teardown frees the bound slots). */
static void round_c(void)
{
	struct objects before = round_begin();
	struct guest g;
	guest_setup(&g);
	step("6c.0", "round (c): fresh VM fd %d, gmem fd %d mapped, slots 0+1 bound, pattern written",
	     g.vm, g.gmem);
	unmap(&g);
	step("6c.1", "munmap'd the mapping first (slots bound, both fds open)");
	close_vm(&g);
	step("6c.2", "closed the VM fd with both slots still bound");
	close_gmem(&g);
	step("6c.3", "closed the gmem fd");
	round_end("round (c)", &before);
}

/* (d) both fds go while slots are bound; the mapping alone holds the memory, then goes last. */
static void round_d(void)
{
	struct objects before = round_begin();
	struct guest g;
	guest_setup(&g);
	step("6d.0", "round (d): fresh VM fd %d, gmem fd %d mapped, slots 0+1 bound, pattern written",
	     g.vm, g.gmem);
	close_gmem(&g);
	step("6d.1", "closed the gmem fd with both slots bound");
	close_vm(&g);
	expect_range(g.map, 0, GMEM_SIZE, GMEM_DEMO_SEED, "round (d): mapping after both fds closed");
	step("6d.2", "closed the VM fd: only the mapping is left, and it still reads the pattern");
	unmap(&g);
	step("6d.3", "munmap'd the mapping last");
	round_end("round (d)", &before);
}

/* ------------------------------------------------------------------------ */
/* step 7 and main                                                           */
/* ------------------------------------------------------------------------ */

/*
 * Nothing may outlive the demo's own fds and mappings. The /dev/kvm fd is not
 * an object in the table, but it is closed too and a fresh one read the table,
 * so that no kvmlike state can hang on the fd the demo used all along.
 */
static void step7_finish(void)
{
	check(close(demo.kvm), "close(/dev/kvm)");
	demo.kvm = -1;
	if (!demo.kvmlike) {
		step("7", "closed /dev/kvm: every fd and mapping the demo created is gone");
		return;
	}
	demo.kvm = open_kvm();
	struct objects o = read_objects(demo.kvm);
	step("7", "closed /dev/kvm and opened a fresh one to read the table: %u live object(s)", o.nr);
	check(close(demo.kvm), "close(/dev/kvm)");
	free(o.v);
	if (o.nr != 0)
		fail("%u kvmlike object(s) still live after everything was closed (leak)", o.nr);
	if (demo.leaked)
		fail("a round left objects behind (see LEAK above)");
}

static void __attribute__((noreturn)) usage(const char *argv0, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [--kernel]\n"
		"  Runs the guest_memfd demo against /dev/kvm. Under the kvmlike interposer\n"
		"  (LD_PRELOAD=.../libkvmlike-preload.so) it prints kvmlike's refcount table\n"
		"  after every step; --kernel skips the kvmlike probe.\n",
		argv0);
	exit(status);
}

int main(int argc, char **argv)
{
	bool kernel_only = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--kernel") == 0)
			kernel_only = true;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			usage(argv[0], 0);
		else
			usage(argv[0], 2);
	}
	/* Line buffering keeps our lines and the peer's in order when piped. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	demo.page = (uint64_t)check(sysconf(_SC_PAGESIZE), "sysconf(_SC_PAGESIZE)");

	struct guest g;
	step1_open(&g, kernel_only);
	step2_gmem(&g);
	step3_slots(&g);
	step4_memory(&g);
	step5_peer(&g);
	close_main(&g);
	round_a();
	round_b();
	round_c();
	round_d();
	step7_finish();
	printf("gmem_demo: OK (%s)\n", demo.kvmlike ? "kvmlike, nothing leaked" : "kernel");
	return 0;
}
