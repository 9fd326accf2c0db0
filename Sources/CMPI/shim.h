#pragma once
// Open MPI's C API (libopenmpi-dev; pkg-config `ompi-c` adds the include and library paths).
#include <mpi.h>

// Open MPI defines its predefined handles as macros that take the address of a global
// (`MPI_COMM_WORLD` is `&ompi_mpi_comm_world`), which Swift cannot import: one accessor each.
static inline MPI_Comm cmpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm cmpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype cmpi_byte(void) { return MPI_BYTE; }
static inline MPI_Errhandler cmpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Status *cmpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Request cmpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Message cmpi_message_null(void) { return MPI_MESSAGE_NULL; }
