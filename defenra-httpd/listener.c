/*
 * The listeners: one evconnlistener per HTTP_LISTEN and HTTPS_LISTEN address and worker
 * (SO_REUSEPORT: each worker has its own accept queue and the kernel spreads connections),
 * handing every accepted socket to hconn_accept(), with TLS for the HTTPS ones (tls.c). A socket
 * handed over by systemd is taken by its address, whichever of the two lists names it.
 */
#include <errno.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "httpd.h"
#include "listen_fds.h"
#include "log.h"

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	hconn_accept(arg, fd, sa, (socklen_t)salen, false);
}

static void
on_accept_tls(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
              void *arg)
{
	hconn_accept(arg, fd, sa, (socklen_t)salen, true);
}

static void
on_accept_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends: the listener keeps going; the counter is the truth. */
	dfr_log_warn("listener, accept failed (%s)", evutil_socket_error_to_string(err));
}

/* A listening socket for one address: SO_REUSEADDR, SO_REUSEPORT (each worker has its own),
 * IPV6_V6ONLY on IPv6 so that "[::]:80" beside "0.0.0.0:80" does not take IPv4 too (peers would
 * show as ::ffff:a.b.c.d in logs, X-Forwarded-For and the WAF). -1 with errno on failure. */
static int
listen_socket(const struct dfr_addr *a)
{
	int fd, one = 1, err;

	/* A socket systemd holds for us (socket activation): the workers share it, and a restart
	 * of httpd refuses no connection, they wait in its backlog. */
	if ((fd = dfr_listen_fd_take(a, SOCK_STREAM)) != -1) {
		if (evutil_make_socket_nonblocking(fd) == 0)
			return fd;
		err = errno;
		(void)close(fd);
		errno = err;
		return -1;
	}
	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
	    (a->sa.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1) ||
	    bind(fd, (const struct sockaddr *)&a->sa, a->salen) == -1 || listen(fd, 1024) == -1) {
		err = errno;
		(void)close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

static int
open_list(struct httpd *srv, const struct dfr_addr_list *al, bool tls)
{
	for (size_t i = 0; i < al->n; i++) {
		struct evconnlistener *l;
		int fd = listen_socket(&al->addrs[i]);

		if (fd == -1) {
			dfr_log_err("listener, cannot listen on %s (%s)", al->addrs[i].text,
			            strerror(errno));
			return DFR_EIO;
		}
		l = evconnlistener_new(srv->h_base, tls ? on_accept_tls : on_accept, srv,
		                       LEV_OPT_CLOSE_ON_FREE, -1, fd);
		if (l == NULL) {
			dfr_log_err("listener, cannot watch %s (out of memory)", al->addrs[i].text);
			(void)close(fd);
			return DFR_ENOMEM;
		}
		evconnlistener_set_error_cb(l, on_accept_error);
		/* Before the first config every Host would be a 404: connections wait in the
		 * backlog until the routes arrive (worker.c enables the listeners then). */
		if (srv->h_routes == NULL)
			(void)evconnlistener_disable(l);
		srv->h_listeners[srv->h_nlisteners++] = l;
		if (srv->h_index == 0)
			dfr_log_info("listener, %s on %s", tls ? "https" : "http",
			             al->addrs[i].text);
	}
	return DFR_OK;
}

int
listener_open_all(struct httpd *srv)
{
	int rc = open_list(srv, &srv->h_opts.o_listen, false);

	if (rc == DFR_OK)
		rc = open_list(srv, &srv->h_opts.o_https_listen, true);
	return rc;
}

void
listener_enable_all(struct httpd *srv)
{
	for (size_t i = 0; i < srv->h_nlisteners; i++)
		(void)evconnlistener_enable(srv->h_listeners[i]);
}

void
listener_close_all(struct httpd *srv)
{
	for (size_t i = 0; i < srv->h_nlisteners; i++)
		evconnlistener_free(srv->h_listeners[i]);
	srv->h_nlisteners = 0;
}
