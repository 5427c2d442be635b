/* Names of the error codes of error.h, for log lines. */
#include <string.h>

#include "error.h"

const char *
dfr_strerror(int rc)
{
	switch (rc) {
	case DFR_OK:
		return "ok";
	case DFR_EPARSE:
		return "malformed input";
	case DFR_ELIMIT:
		return "limit exceeded";
	case DFR_ESTALE:
		return "generation out of sequence";
	case DFR_EVERSION:
		return "unknown version";
	case DFR_ENOTFOUND:
		return "not found";
	case DFR_EREJECTED:
		return "rejected by peer";
	case DFR_EIO:
		return "transfer failed";
	}
	if (rc < 0 && rc > -1000)
		return strerror(-rc);
	return "unknown error";
}
