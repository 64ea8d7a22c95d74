/*
 * trace: which functions does the long-running shim run? (for link/regen)
 *
 *   trace FUNCS OUT PID
 *
 * Seizes PID (a wrapper about to exec the shim's `start`) and follows what
 * it forks and execs. In every process that execs with a command line
 * ending in "serve" (the long-running shim), puts an int3 on each function
 * start listed in FUNCS (hex offsets from the binary's load base, from
 * `nm` of an unstripped build); at the first hit of each, logs the offset
 * to OUT.PID, restores the byte and lets the process go on. One trap per
 * function, so the shim runs at nearly full speed and containerd's
 * timeouts hold. Processes that exec anything else are let go. Creates
 * OUT.ready.PID once attached.
 *
 * A development tool, not part of skiff: it is compiled and run by
 * link/regen only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned long *funcs;
static unsigned char *orig;
static char *state; /* 0 armed, 1 hit, 2 could not be armed */
static size_t nfuncs;
static unsigned long base;
static int armed;
static FILE *out;

static int cmp_ul(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
	return x < y ? -1 : x > y;
}

static long find(unsigned long off)
{
	size_t lo = 0, hi = nfuncs;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (funcs[m] < off)
			lo = m + 1;
		else
			hi = m;
	}
	return lo < nfuncs && funcs[lo] == off ? (long)lo : -1;
}

/* The last word of /proc/PID/cmdline. */
static int last_arg_is(pid_t pid, const char *want)
{
	char path[64], buf[8192];
	snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	if (buf[n - 1] == 0)
		n--;
	char *last = buf + n;
	while (last > buf && last[-1])
		last--;
	return strcmp(last, want) == 0;
}

static int mem_of(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/mem", pid);
	return open(path, O_RDWR);
}

static void arm(pid_t pid)
{
	char path[64], line[1024];
	snprintf(path, sizeof path, "/proc/%d/maps", pid);
	FILE *maps = fopen(path, "r");
	base = 0;
	while (maps && fgets(line, sizeof line, maps)) {
		unsigned long lo, hi, off;
		char perm[8];
		/* The binary's first mapping: offset 0, a file. */
		if (sscanf(line, "%lx-%lx %7s %lx", &lo, &hi, perm, &off) == 4 && off == 0 && strchr(line, '/')) {
			base = lo;
			break;
		}
	}
	if (maps)
		fclose(maps);
	int mem = mem_of(pid);
	unsigned char int3 = 0xcc;
	size_t ok = 0;
	for (size_t i = 0; i < nfuncs; i++) {
		if (pread(mem, &orig[i], 1, base + funcs[i]) == 1 && pwrite(mem, &int3, 1, base + funcs[i]) == 1)
			ok++;
		else
			state[i] = 2;
	}
	close(mem);
	armed = 1;
	fprintf(out, "# pid %d base %lx: %zu of %zu functions armed\n", pid, base, ok, nfuncs);
	fflush(out);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: trace FUNCS OUT PID\n");
		return 2;
	}
	FILE *f = fopen(argv[1], "r");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	size_t cap = 1 << 14;
	funcs = malloc(cap * sizeof *funcs);
	unsigned long v;
	while (fscanf(f, "%lx", &v) == 1) {
		if (nfuncs == cap)
			funcs = realloc(funcs, (cap *= 2) * sizeof *funcs);
		funcs[nfuncs++] = v;
	}
	fclose(f);
	qsort(funcs, nfuncs, sizeof *funcs, cmp_ul);
	size_t k = 0;
	for (size_t i = 0; i < nfuncs; i++)
		if (k == 0 || funcs[k - 1] != funcs[i])
			funcs[k++] = funcs[i];
	nfuncs = k;
	orig = calloc(nfuncs, 1);
	state = calloc(nfuncs, 1);

	pid_t root = atoi(argv[3]);
	char path[4096];
	snprintf(path, sizeof path, "%s.%d", argv[2], root);
	out = fopen(path, "w");
	if (!out) {
		perror(path);
		return 1;
	}
	long opts = PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC;
	if (ptrace(PTRACE_SEIZE, root, 0, opts) < 0) {
		perror("ptrace seize");
		return 1;
	}
	snprintf(path, sizeof path, "%s.ready.%d", argv[2], root);
	close(open(path, O_CREAT | O_WRONLY, 0644));

	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, __WALL);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break; /* ECHILD: nothing traced is left */
		}
		if (!WIFSTOPPED(st))
			continue;
		int sig = WSTOPSIG(st), event = st >> 16;
		if (event == PTRACE_EVENT_EXEC) {
			if (last_arg_is(pid, "serve")) {
				arm(pid);
				ptrace(PTRACE_CONT, pid, 0, 0);
			} else if (last_arg_is(pid, "start")) {
				ptrace(PTRACE_CONT, pid, 0, 0);
			} else {
				ptrace(PTRACE_DETACH, pid, 0, 0);
			}
			continue;
		}
		if (event) {
			ptrace(PTRACE_CONT, pid, 0, 0);
			continue;
		}
		if (sig == SIGTRAP && armed) {
			struct user_regs_struct regs;
			ptrace(PTRACE_GETREGS, pid, 0, &regs);
			long i = find(regs.rip - 1 - base);
			if (i >= 0 && state[i] != 2) {
				if (state[i] == 0) {
					state[i] = 1;
					fprintf(out, "%lx %d\n", funcs[i], pid);
					fflush(out);
				}
				/* Per process: a fork child has its own copy. */
				int mem = mem_of(pid);
				pwrite(mem, &orig[i], 1, base + funcs[i]);
				close(mem);
				regs.rip -= 1;
				ptrace(PTRACE_SETREGS, pid, 0, &regs);
				ptrace(PTRACE_CONT, pid, 0, 0);
				continue;
			}
		}
		/* New tracees start stopped; anything else is the process's own signal. */
		ptrace(PTRACE_CONT, pid, 0, sig == SIGSTOP ? 0 : sig);
	}
	return 0;
}
