/*
 * Socket activation: finding the socket systemd handed over for an address. The descriptors
 * stay open for the life of the process (they are systemd's copies: closing them would not stop
 * the listening, and a daemon's own descriptors are dups); callers close their dups as usual.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "listen_fds.h"
#include "log.h"

static pthread_once_t listen_once = PTHREAD_ONCE_INIT;
static int listen_n;

static void
listen_fds_init(void)
{
	/* Keep LISTEN_* in the environment: nothing else reads it, and it costs nothing. */
	int n = sd_listen_fds(0);

	listen_n = n > 0 ? n : 0;
	if (listen_n > 0)
		dfr_log_info("systemd, %d listening sockets handed over", listen_n);
}

int
dfr_listen_fds_count(void)
{
	pthread_once(&listen_once, listen_fds_init);
	return listen_n;
}

int
dfr_listen_fd_take(const struct dfr_addr *a, int type)
{
	int n = dfr_listen_fds_count();

	for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
		if (sd_is_socket_sockaddr(fd, type, (const struct sockaddr *)&a->sa, a->salen,
					  type == SOCK_STREAM ? 1 : -1) > 0)
			return fcntl(fd, F_DUPFD_CLOEXEC, 0);
	}
	return -1;
}
