// SPDX-License-Identifier: GPL-2.0
/*
 * qtrelay: the guest side of the relay checks (tests/vm/guest/test.sh, -o relay):
 * FIFOs and a pty of the HOST used through qtfs.ko. Built static by tests/vm/run.
 *
 *   qtrelay poll FILE MS      open O_RDONLY|O_NONBLOCK, poll(POLLIN) up to MS:
 *                             "ready REVENTS MS-WAITED" or "timeout MS-WAITED"
 *   qtrelay epoll FILE MS     the same with epoll_wait (level-triggered)
 *   qtrelay readsig FILE MS   blocking open and read; SIGALRM (no SA_RESTART) after MS:
 *                             "EINTR after N ms" or what the read returned instead
 *   qtrelay tty DEV           isatty, tcgetattr (the HOST's settings), a tcsetattr of
 *                             VMIN/VTIME read back, TIOCGWINSZ, lseek (ESPIPE), a read
 *                             with O_NONBLOCK set by fcntl (EAGAIN: nothing typed):
 *                             "tty ..." or "error ..."
 *   qtrelay echo DEV N        writes "ping-qtfs", expects "PING-QTFS" (the HOST side
 *                             upper-cases), then N one-byte round trips:
 *                             "echo ok p50 US p99 US max US" (microseconds)
 * Exit status 0 when the line printed is the expected kind, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static int die(const char *what)
{
	printf("error %s: %s\n", what, strerror(errno));
	return 1;
}

static void on_alarm(int sig)
{
	(void)sig;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

/* Reads exactly n bytes (blocking), with a deadline in ms via poll. */
static int read_n(int fd, char *buf, int n, int ms)
{
	int got = 0;

	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, ms);
		ssize_t k;

		if (r <= 0)
			return r == 0 ? -ETIMEDOUT : -errno;
		k = read(fd, buf + got, n - got);
		if (k < 0 && errno == EAGAIN)
			continue;
		if (k <= 0)
			return k ? -errno : -EPIPE;
		got += k;
	}
	return got;
}

int main(int argc, char **argv)
{
	long long t0;
	int fd, ms;

	if (argc < 3) {
		fprintf(stderr, "usage: qtrelay poll|epoll|readsig FILE MS | tty DEV | echo DEV N\n");
		return 2;
	}
	ms = argc > 3 ? atoi(argv[3]) : 0;
	if (!strcmp(argv[1], "poll") || !strcmp(argv[1], "epoll")) {
		int r;
		unsigned int rev = 0;

		fd = open(argv[2], O_RDONLY | O_NONBLOCK);
		if (fd < 0)
			return die("open");
		t0 = now_us();
		if (argv[1][0] == 'p') {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			r = poll(&p, 1, ms);
			rev = p.revents;
		} else {
			struct epoll_event ev = { .events = EPOLLIN }, out;
			int ep = epoll_create1(0);

			if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
				return die("epoll_ctl");
			r = epoll_wait(ep, &out, 1, ms);
			rev = out.events;
		}
		if (r < 0)
			return die(argv[1]);
		if (r == 0) {
			printf("timeout %lld\n", (now_us() - t0) / 1000);
			return 0;
		}
		printf("ready %#x %lld\n", rev, (now_us() - t0) / 1000);
		return 0;
	}
	if (!strcmp(argv[1], "readsig")) {
		struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART */
		struct itimerval it = { .it_value = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 } };
		char buf[64];
		ssize_t n;

		sigaction(SIGALRM, &sa, NULL);
		fd = open(argv[2], O_RDONLY);
		if (fd < 0)
			return die("open");
		t0 = now_us();
		setitimer(ITIMER_REAL, &it, NULL);
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR) {
			printf("EINTR after %lld ms\n", (now_us() - t0) / 1000);
			return 0;
		}
		printf("read returned %zd (%s) after %lld ms\n", n, n < 0 ? strerror(errno) : "data/eof",
		       (now_us() - t0) / 1000);
		return 1;
	}
	if (!strcmp(argv[1], "tty")) {
		struct termios t, t2;
		struct winsize w;
		char buf[4];

		fd = open(argv[2], O_RDWR | O_NOCTTY);
		if (fd < 0)
			return die("open");
		if (!isatty(fd))
			return die("isatty");
		if (tcgetattr(fd, &t))
			return die("tcgetattr");
		t2 = t;
		t2.c_cc[VMIN] = 3;
		t2.c_cc[VTIME] = 7;
		if (tcsetattr(fd, TCSANOW, &t2))
			return die("tcsetattr");
		memset(&t2, 0, sizeof(t2));
		if (tcgetattr(fd, &t2))
			return die("tcgetattr 2");
		if (ioctl(fd, TIOCGWINSZ, &w))
			return die("TIOCGWINSZ");
		tcsetattr(fd, TCSANOW, &t);
		if (lseek(fd, 0, SEEK_SET) != -1 || errno != ESPIPE)
			return die("lseek (want ESPIPE)");
		if (fcntl(fd, F_SETFL, O_NONBLOCK))
			return die("fcntl");
		t0 = now_us();
		if (read(fd, buf, 1) != -1 || errno != EAGAIN)
			return die("O_NONBLOCK read (want EAGAIN)");
		printf("tty echo=%d icanon=%d vmin=%d vtime=%d nbread=EAGAIN(%lld us) rows=%d cols=%d\n",
		       !!(t.c_lflag & ECHO), !!(t.c_lflag & ICANON), t2.c_cc[VMIN], t2.c_cc[VTIME],
		       now_us() - t0, w.ws_row, w.ws_col);
		return 0;
	}
	if (!strcmp(argv[1], "echo")) {
		int n = ms > 0 ? ms : 100, i;
		long long *lat = calloc(n, sizeof(*lat));
		char buf[16];

		fd = open(argv[2], O_RDWR | O_NOCTTY);
		if (fd < 0 || !lat)
			return die("open");
		if (write(fd, "ping-qtfs", 9) != 9)
			return die("write");
		i = read_n(fd, buf, 9, 10000);
		if (i != 9 || memcmp(buf, "PING-QTFS", 9)) {
			printf("error reply %d '%.*s'\n", i, i > 0 ? i : 0, buf);
			return 1;
		}
		for (i = 0; i < n; i++) {
			char c = 'a' + i % 26, d = 0;
			long long t = now_us();

			if (write(fd, &c, 1) != 1)
				return die("write 1");
			if (read_n(fd, &d, 1, 10000) != 1 || d != c - 'a' + 'A') {
				printf("error round trip %d: got '%c'\n", i, d);
				return 1;
			}
			lat[i] = now_us() - t;
		}
		qsort(lat, n, sizeof(*lat), cmp_ll);
		printf("echo ok n %d p50 %lld p99 %lld max %lld us\n", n, lat[n / 2], lat[(n * 99) / 100], lat[n - 1]);
		return 0;
	}
	fprintf(stderr, "unknown mode %s\n", argv[1]);
	return 2;
}
