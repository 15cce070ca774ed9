#ifndef PTUNE_CMPI_SHIM_H
#define PTUNE_CMPI_SHIM_H
#include <mpi.h>

// Open MPI defines its handles as macros over addresses of global objects,
// which Swift cannot import; these getters hand them over as values.
static inline MPI_Comm ptune_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm ptune_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype ptune_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype ptune_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype ptune_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype ptune_mpi_int(void) { return MPI_INT; }
static inline MPI_Datatype ptune_mpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Op ptune_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op ptune_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op ptune_mpi_min(void) { return MPI_MIN; }
static inline void *ptune_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Request ptune_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *ptune_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int ptune_mpi_undefined(void) { return MPI_UNDEFINED; }
static inline MPI_Datatype ptune_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Info ptune_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline MPI_Win ptune_mpi_win_null(void) { return MPI_WIN_NULL; }
static inline int ptune_mpi_lock_shared(void) { return MPI_LOCK_SHARED; }
static inline MPI_Errhandler ptune_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Errhandler ptune_mpi_errors_are_fatal(void) { return MPI_ERRORS_ARE_FATAL; }

#endif
