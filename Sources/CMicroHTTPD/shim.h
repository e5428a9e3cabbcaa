#ifndef BUILDSET_CMICROHTTPD_SHIM_H
#define BUILDSET_CMICROHTTPD_SHIM_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <microhttpd.h>

/* Swift cannot call C variadic functions, so the few variadic entry points of
   libmicrohttpd are wrapped here with fixed argument lists. */

/* The settings of one daemon; zero or NULL leaves a setting at its default. */
struct shim_mhd_settings {
    const char *bind_address;              /* IPv4 or IPv6 literal; NULL binds every address */
    uint16_t port;                         /* 0 picks a free port */
    unsigned int connection_limit;
    unsigned int connection_timeout;       /* seconds of inactivity before a connection is closed */
    size_t connection_memory_limit;        /* bytes of buffer per connection */
    size_t thread_stack_size;
    const char *tls_cert_pem;              /* both set: serve TLS */
    const char *tls_key_pem;
    const char *tls_priorities;
    MHD_RequestCompletedCallback completed;
    void *completed_cls;
};

static inline struct MHD_Daemon *shim_mhd_start(unsigned int flags, const struct shim_mhd_settings *settings,
                                                MHD_AccessHandlerCallback handler, void *handler_cls) {
    struct MHD_OptionItem options[16];
    int count = 0;
    struct sockaddr_in address4;
    struct sockaddr_in6 address6;

    if (settings->bind_address != NULL) {
        memset(&address4, 0, sizeof(address4));
        memset(&address6, 0, sizeof(address6));
        if (inet_pton(AF_INET, settings->bind_address, &address4.sin_addr) == 1) {
            address4.sin_family = AF_INET;
            address4.sin_port = htons(settings->port);
            options[count++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &address4};
        } else if (inet_pton(AF_INET6, settings->bind_address, &address6.sin6_addr) == 1) {
            address6.sin6_family = AF_INET6;
            address6.sin6_port = htons(settings->port);
            options[count++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &address6};
            flags |= MHD_USE_IPv6;
        } else {
            return NULL;
        }
    }
    if (settings->connection_limit > 0) {
        options[count++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, settings->connection_limit, NULL};
    }
    if (settings->connection_timeout > 0) {
        options[count++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, settings->connection_timeout, NULL};
    }
    if (settings->connection_memory_limit > 0) {
        options[count++] =
            (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)settings->connection_memory_limit, NULL};
    }
    if (settings->thread_stack_size > 0) {
        options[count++] =
            (struct MHD_OptionItem){MHD_OPTION_THREAD_STACK_SIZE, (intptr_t)settings->thread_stack_size, NULL};
    }
    if (settings->tls_cert_pem != NULL && settings->tls_key_pem != NULL) {
        flags |= MHD_USE_TLS;
        options[count++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)settings->tls_cert_pem};
        options[count++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)settings->tls_key_pem};
        if (settings->tls_priorities != NULL) {
            options[count++] =
                (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)settings->tls_priorities};
        }
    }
    if (settings->completed != NULL) {
        options[count++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)settings->completed,
                                                   settings->completed_cls};
    }
    options[count++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    uint16_t port = settings->bind_address != NULL ? 0 : settings->port;
    return MHD_start_daemon(flags, port, NULL, NULL, handler, handler_cls, MHD_OPTION_ARRAY, options,
                            MHD_OPTION_END);
}

/* The port the daemon listens on, or 0 when it cannot be read. */
static inline uint16_t shim_mhd_bound_port(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info != NULL ? info->port : 0;
}

/* The peer's address as text, written into buffer; an empty string when unknown. */
static inline void shim_mhd_client_address(struct MHD_Connection *connection, char *buffer, size_t size) {
    buffer[0] = '\0';
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info == NULL || info->client_addr == NULL) {
        return;
    }
    const struct sockaddr *address = info->client_addr;
    if (address->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)address)->sin_addr, buffer, (socklen_t)size);
    } else if (address->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)address)->sin6_addr, buffer, (socklen_t)size);
    }
}

#endif
