/*
 * Error codes of the suite (Knot's convention): int functions return DFR_OK (0) or a negative
 * code, -errno where one fits, our own below -1000.
 */
#ifndef DFR_ERROR_H
#define DFR_ERROR_H

#include <errno.h>

enum {
	DFR_OK = 0,
	DFR_ENOMEM = -ENOMEM,
	DFR_EINVAL = -EINVAL,
	DFR_EAGAIN = -EAGAIN,
	DFR_EPARSE = -1001,   /* input is not well-formed (JSON, packet, message) */
	DFR_ELIMIT = -1002,   /* input exceeds a size or count limit */
	DFR_ESTALE = -1003,   /* generation does not follow the one we have */
	DFR_EVERSION = -1004, /* message of an unknown version */
	DFR_ENOTFOUND = -1005,
	DFR_EREJECTED = -1006, /* the peer answered, but no */
	DFR_EIO = -1007,       /* a transfer or peer failed */
};

/* Names a code for a log line. Never NULL. */
const char *dfr_strerror(int rc);

#endif
