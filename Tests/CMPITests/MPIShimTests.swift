import CMPI
import XCTest

/// The shim's handle getters work in a one-process MPI world (no mpirun), the debug mode's world.
final class MPIShimTests: XCTestCase {
    func testOneProcessWorldAllReducesThroughTheShimHandles() {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 { XCTAssertEqual(MPI_Init(nil, nil), MPI_SUCCESS) }
        var size: Int32 = 0, rank: Int32 = -1
        MPI_Comm_size(ptune_mpi_comm_world(), &size)
        MPI_Comm_rank(ptune_mpi_comm_world(), &rank)
        XCTAssertEqual(size, 1)
        XCTAssertEqual(rank, 0)
        var values: [Float] = [1.5, -2, 3]
        let status = values.withUnsafeMutableBufferPointer {
            MPI_Allreduce(ptune_mpi_in_place(), $0.baseAddress, 3, ptune_mpi_float(), ptune_mpi_sum(), ptune_mpi_comm_world())
        }
        XCTAssertEqual(status, MPI_SUCCESS)
        XCTAssertEqual(values, [1.5, -2, 3])
    }
}
