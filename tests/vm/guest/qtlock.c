/*
 * qtlock: the lock and coherence helper of tests/vm (built static by tests/vm/run; the
 * guest has it as /usr/local/bin/qtlock, the HOST's action server runs the same binary).
 *
 *   qtlock [-t posix|ofd|flock] [-l rd|wr|un] [-w] [-g] [-s START] [-n LEN] [-r] [-d]
 *          [-h MS] [-u rd|wr|un] FILE
 *     takes (or with -g tests, F_GETLK / F_OFD_GETLK) one lock and prints one line:
 *       locked MS | error ERRNO MS | getlk un | getlk rd|wr START LEN PID
 *     -w waits (F_SETLKW, F_OFD_SETLKW, flock without LOCK_NB); SIGUSR1 (handled, no
 *        SA_RESTART) interrupts the wait: "error EINTR MS"
 *     -d after locking, opens FILE again and closes that descriptor (POSIX: that drops
 *        the process's locks on the file; "dropped" is printed)
 *     -h holds the lock MS milliseconds (-1: until SIGTERM/SIGINT) before exiting
 *     -u on SIGUSR2 while holding, does a second operation of that type on the same
 *        descriptor and prints "second ok" or "second error ERRNO"
 *   qtlock coh FILE WRITER N
 *     coherence latency: FILE stays open (and its first page mapped) with a long
 *     attribute timeout; N times, WRITER changes its 5 first bytes to "vNNNN" and the
 *     time until pread, the mapping and stat(2) (mtime) show it is printed:
 *       coh I read_ms mmap_ms stat_ms trigger_ms
 *     WRITER is host:IP:PORT:REL (the HOST's action server writes REL of the export,
 *     the time counts from its answer) or a path (another mount of the export, written
 *     with pwrite).
 *   qtlock gone FILE WRITER CMD...   ask WRITER (host:IP:PORT) for CMD, then time until
 *     stat(FILE) fails with ENOENT ("gone MS") or, with CMD create, succeeds ("there MS")
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t second, stop;
static void on_usr1(int s) { (void)s; }
static void on_usr2(int s) { (void)s; second = 1; }
static void on_term(int s) { (void)s; stop = 1; }

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static const char *ename(int e)
{
	switch (e) {
	case EAGAIN: return "EAGAIN";
	case EACCES: return "EACCES";
	case EINTR: return "EINTR";
	case ENOLCK: return "ENOLCK";
	case EBADF: return "EBADF";
	case EIO: return "EIO";
	case EDEADLK: return "EDEADLK";
	case ENOENT: return "ENOENT";
	case EINVAL: return "EINVAL";
	case ETIMEDOUT: return "ETIMEDOUT";
	}
	return "E?";
}

static int kind_flock, kind_ofd, start, len;

static int lock_op(int fd, int type, int wait)
{
	if (kind_flock) {
		int op = type == F_RDLCK ? LOCK_SH : type == F_WRLCK ? LOCK_EX : LOCK_UN;

		return flock(fd, op | (wait ? 0 : LOCK_NB));
	}
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	int cmd = kind_ofd ? (wait ? F_OFD_SETLKW : F_OFD_SETLK) : (wait ? F_SETLKW : F_SETLK);

	return fcntl(fd, cmd, &fl);
}

static int parse_type(const char *s)
{
	return !strcmp(s, "rd") ? F_RDLCK : !strcmp(s, "un") ? F_UNLCK : F_WRLCK;
}

/* One request line to the HOST's action server; its answer in buf. */
static int host_call(const char *ip, int port, const char *line, char *buf, size_t cap)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int s = socket(AF_INET, SOCK_STREAM, 0);
	size_t got = 0;
	ssize_t n;

	inet_pton(AF_INET, ip, &a.sin_addr);
	if (s < 0 || connect(s, (void *)&a, sizeof(a)) < 0) {
		perror("connect");
		return -1;
	}
	if (write(s, line, strlen(line)) < 0)
		return -1;
	shutdown(s, SHUT_WR);
	while (got + 1 < cap && (n = read(s, buf + got, cap - 1 - got)) > 0)
		got += n;
	buf[got] = 0;
	close(s);
	return 0;
}

/* WRITER spec: host:IP:PORT[:REL] */
static int parse_host(const char *w, char *ip, int *port, char *rel)
{
	char tmp[512];
	char *p, *q;

	if (strncmp(w, "host:", 5))
		return -1;
	snprintf(tmp, sizeof(tmp), "%s", w + 5);
	p = strchr(tmp, ':');
	if (!p)
		return -1;
	*p++ = 0;
	strcpy(ip, tmp);
	*port = atoi(p);
	q = strchr(p, ':');
	strcpy(rel, q ? q + 1 : "");
	return 0;
}

static int coh(const char *file, const char *writer, int n)
{
	char ip[64], rel[400], line[512], buf[256], want[16];
	int port, fd, wfd = -1, i, host = parse_host(writer, ip, &port, rel) == 0;
	struct stat st0, st;
	char *map;

	fd = open(file, O_RDONLY);
	if (fd < 0 || fstat(fd, &st0) < 0) {
		perror(file);
		return 1;
	}
	map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	if (!host && (wfd = open(writer, O_WRONLY)) < 0) {
		perror(writer);
		return 1;
	}
	for (i = 1; i <= n; i++) {
		double t0, t1, tr = -1, tm = -1, ts = -1, t;

		snprintf(want, sizeof(want), "v%04d", i);
		/* everything cached first: the old content through all three */
		if (pread(fd, buf, 5, 0) != 5 || map[0] != buf[0] || stat(file, &st0) < 0) {
			perror("pread");
			return 1;
		}
		t0 = now_ms();
		if (host) {
			snprintf(line, sizeof(line), "write %s %s\n", rel, want);
			if (host_call(ip, port, line, buf, sizeof(buf)) || strncmp(buf, "ok", 2)) {
				printf("error writer: %s\n", buf);
				return 1;
			}
		} else if (pwrite(wfd, want, 5, 0) != 5) {
			perror("pwrite");
			return 1;
		}
		t1 = now_ms();
		while ((tr < 0 || tm < 0 || ts < 0) && (t = now_ms()) - t1 < 10000) {
			if (tr < 0 && pread(fd, buf, 5, 0) == 5 && !memcmp(buf, want, 5))
				tr = t - t1;
			if (tm < 0 && !memcmp(map, want, 5))
				tm = t - t1;
			if (ts < 0 && stat(file, &st) == 0 &&
			    (st.st_mtim.tv_sec != st0.st_mtim.tv_sec || st.st_mtim.tv_nsec != st0.st_mtim.tv_nsec))
				ts = t - t1;
			usleep(1000);
		}
		printf("coh %d %.1f %.1f %.1f %.1f\n", i, tr, tm, ts, t1 - t0);
		fflush(stdout);
		usleep(50000);
	}
	return 0;
}

static int gone(const char *file, const char *writer, char **cmd, int ncmd)
{
	char ip[64], rel[400], line[512] = "", buf[256];
	int port, i, want_there = !strcmp(cmd[0], "create");
	struct stat st;
	double t1, t;

	if (parse_host(writer, ip, &port, rel))
		return 1;
	/* cached first: the name, or its absence */
	if ((stat(file, &st) == 0) == want_there) {
		printf("error precondition\n");
		return 1;
	}
	for (i = 0; i < ncmd; i++) {
		strcat(line, cmd[i]);
		strcat(line, i + 1 < ncmd ? " " : "\n");
	}
	if (host_call(ip, port, line, buf, sizeof(buf)) || strncmp(buf, "ok", 2)) {
		printf("error writer: %s\n", buf);
		return 1;
	}
	t1 = now_ms();
	while ((t = now_ms()) - t1 < 10000) {
		if ((stat(file, &st) == 0) == want_there) {
			printf("%s %.1f\n", want_there ? "there" : "gone", t - t1);
			return 0;
		}
		usleep(1000);
	}
	printf("error still %s after 10 s\n", want_there ? "absent" : "there");
	return 1;
}

int main(int argc, char **argv)
{
	int type = F_WRLCK, wait = 0, get = 0, rdonly = 0, drop = 0, hold = 0, second_type = -1, c, fd, r;
	struct sigaction sa = { 0 };
	double t0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 5 && !strcmp(argv[1], "coh"))
		return coh(argv[2], argv[3], atoi(argv[4]));
	if (argc >= 5 && !strcmp(argv[1], "gone"))
		return gone(argv[2], argv[3], argv + 4, argc - 4);
	while ((c = getopt(argc, argv, "t:l:wgs:n:rdh:u:")) != -1) {
		switch (c) {
		case 't': kind_flock = !strcmp(optarg, "flock"); kind_ofd = !strcmp(optarg, "ofd"); break;
		case 'l': type = parse_type(optarg); break;
		case 'w': wait = 1; break;
		case 'g': get = 1; break;
		case 's': start = atoi(optarg); break;
		case 'n': len = atoi(optarg); break;
		case 'r': rdonly = 1; break;
		case 'd': drop = 1; break;
		case 'h': hold = atoi(optarg); break;
		case 'u': second_type = parse_type(optarg); break;
		default: fprintf(stderr, "usage: see qtlock.c\n"); return 2;
		}
	}
	if (optind >= argc)
		return 2;
	sa.sa_handler = on_usr1; /* no SA_RESTART: a blocked wait returns EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fd = open(argv[optind], rdonly ? O_RDONLY : O_RDWR);
	if (fd < 0) {
		printf("error open %s\n", ename(errno));
		return 1;
	}
	if (get) {
		struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };

		if (fcntl(fd, kind_ofd ? F_OFD_GETLK : F_GETLK, &fl) < 0) {
			printf("error %s\n", ename(errno));
			return 1;
		}
		if (fl.l_type == F_UNLCK)
			printf("getlk un\n");
		else
			printf("getlk %s %lld %lld %d\n", fl.l_type == F_RDLCK ? "rd" : "wr", (long long)fl.l_start,
			       (long long)fl.l_len, (int)fl.l_pid);
		return 0;
	}
	t0 = now_ms();
	r = lock_op(fd, type, wait);
	if (r < 0) {
		printf("error %s %.0f\n", ename(errno), now_ms() - t0);
		return 1;
	}
	printf("locked %.0f\n", now_ms() - t0);
	if (drop) {
		int fd2 = open(argv[optind], O_RDONLY);

		if (fd2 >= 0)
			close(fd2);
		printf("dropped\n");
	}
	t0 = now_ms();
	while (!stop && (hold < 0 || now_ms() - t0 < hold)) {
		if (second) {
			second = 0;
			if (lock_op(fd, second_type, 0) < 0)
				printf("second error %s\n", ename(errno));
			else
				printf("second ok\n");
		}
		usleep(10000);
	}
	return 0;
}
