/*
 * client.h: what the nodetalk client's files share.
 */
#ifndef CLIENT_H
#define CLIENT_H

#include <sys/time.h>

/* client_status.c: print the cluster; 0, or 1 when the node is down. */
int	client_status(const char *host, int port, const struct timeval *);

#endif /* CLIENT_H */
