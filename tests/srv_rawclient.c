/* srv_rawclient.c: a misbehaving HTTP client for tests/srv_e2e.sh.
 *
 *   srv_rawclient PORT MODE TEXT
 * connects to 127.0.0.1:PORT, sends TEXT (C escapes \r \n are expanded) and
 * then, by MODE:
 *   stall      sends nothing more and keeps the connection open
 *   halfclose  shuts down its sending side (shutdown SHUT_WR)
 * and reads until the server closes the connection, for at most 15 s.
 * Says "sent" on stderr once TEXT is sent (tests wait for it), prints what
 * it received on stdout; exits 0 when the server closed the connection
 * (or answered and closed), 2 when 15 s passed first, 1 on a socket error.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static size_t unescape(const char *s, char *out)
{
    size_t n = 0;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] == 'r')
            out[n++] = '\r', s++;
        else if (s[0] == '\\' && s[1] == 'n')
            out[n++] = '\n', s++;
        else
            out[n++] = *s;
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: srv_rawclient PORT stall|halfclose TEXT\n");
        return 1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)atoi(argv[1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        return 1;
    }
    char *buf = malloc(strlen(argv[3]) + 1);
    size_t n = buf ? unescape(argv[3], buf) : 0;
    if (!buf || send(fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n) {
        perror("send");
        return 1;
    }
    free(buf);
    fputs("sent\n", stderr);
    fflush(stderr);
    if (!strcmp(argv[2], "halfclose"))
        shutdown(fd, SHUT_WR);
    time_t end = time(NULL) + 15;
    char rbuf[4096];
    while (time(NULL) < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 500) <= 0)
            continue;
        ssize_t got = recv(fd, rbuf, sizeof rbuf, 0);
        if (got <= 0) {
            close(fd);
            return 0;
        }
        fwrite(rbuf, 1, (size_t)got, stdout);
    }
    close(fd);
    return 2;
}
