import CMPI
import Foundation

/// Open MPI's communicator: the world under `mpirun`, or a group split from it.
public final class MPICommunicator: Communicator {
    private var communicator: MPI_Comm
    public let rank: Int
    public let size: Int

    /// The world, initialising MPI once per process (a binary started without `mpirun` is a
    /// world of one). MPI is finalised when the process exits.
    public static func world() -> MPICommunicator {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            var provided: Int32 = 0
            MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided)
            atexit {
                var finalized: Int32 = 0
                MPI_Finalized(&finalized)
                if finalized == 0 { MPI_Finalize() }
            }
        }
        return MPICommunicator(ptune_mpi_comm_world())
    }

    /// Whether this process was started by `mpirun` (Open MPI sets these for every rank).
    public static var launchedByMPI: Bool {
        ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil
            || ProcessInfo.processInfo.environment["PMI_SIZE"] != nil
    }

    private init(_ communicator: MPI_Comm) {
        self.communicator = communicator
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(communicator, &rank)
        MPI_Comm_size(communicator, &size)
        self.rank = Int(rank)
        self.size = Int(size)
    }

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        // MPI counts are 32-bit: reduce in chunks so tens of millions of floats (full fine-tuning) fit.
        var offset = 0
        while offset < count {
            let chunk = min(count - offset, 1 << 28)
            check(MPI_Allreduce(ptune_mpi_in_place(), buffer + offset, Int32(chunk), ptune_mpi_float(), ptune_mpi_sum(),
                                communicator), "MPI_Allreduce")
            offset += chunk
        }
    }

    public func startAllReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) -> PendingReduction {
        precondition(count <= Int(Int32.max), "a non-blocking all-reduce takes at most 2^31 - 1 floats")
        let pending = MPIPendingReduction(owner: self)
        check(MPI_Iallreduce(ptune_mpi_in_place(), buffer, Int32(count), ptune_mpi_float(), ptune_mpi_sum(), communicator,
                             &pending.request), "MPI_Iallreduce")
        return pending
    }

    public func allReduceSum(_ values: inout [Double]) {
        let count = Int32(values.count)
        values.withUnsafeMutableBufferPointer {
            check(MPI_Allreduce(ptune_mpi_in_place(), $0.baseAddress, count, ptune_mpi_double(), ptune_mpi_sum(), communicator),
                  "MPI_Allreduce")
        }
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) {
        check(MPI_Bcast(buffer, Int32(count), ptune_mpi_float(), Int32(root), communicator), "MPI_Bcast")
    }

    public func allGather(_ bytes: Data) -> [Data] {
        var length = Int32(bytes.count)
        var lengths = [Int32](repeating: 0, count: size)
        check(MPI_Allgather(&length, 1, ptune_mpi_int(), &lengths, 1, ptune_mpi_int(), communicator), "MPI_Allgather")
        var offsets = [Int32](repeating: 0, count: size)
        for r in 1..<max(size, 1) { offsets[r] = offsets[r - 1] + lengths[r - 1] }
        var gathered = [UInt8](repeating: 0, count: Int(lengths.reduce(0, +)))
        var local = [UInt8](bytes)
        check(MPI_Allgatherv(&local, length, ptune_mpi_byte(), &gathered, &lengths, &offsets, ptune_mpi_byte(), communicator),
              "MPI_Allgatherv")
        return (0..<size).map { Data(gathered[Int(offsets[$0])..<Int(offsets[$0] + lengths[$0])]) }
    }

    public func split(color: Int, key: Int) -> Communicator {
        var group: MPI_Comm? = ptune_mpi_comm_null()
        check(MPI_Comm_split(communicator, Int32(color), Int32(key), &group), "MPI_Comm_split")
        guard let group else { abort("MPI_Comm_split gave no communicator") }
        return MPICommunicator(group)
    }

    public func makeCounter() -> SharedCounter? {
        // Open MPI 4.1 between hosts on TCP has a window only with MPI_THREAD_MULTIPLE, which Debian's
        // build does not provide: ask with errors returned, and agree on the outcome.
        MPI_Comm_set_errhandler(communicator, ptune_mpi_errors_return())
        defer { MPI_Comm_set_errhandler(communicator, ptune_mpi_errors_are_fatal()) }
        let counter = MPICounter(owner: self, communicator: communicator)
        var failures = [counter == nil ? 1.0 : 0]
        allReduceSum(&failures)
        guard failures[0] == 0 else {
            counter?.free()
            return nil
        }
        return counter
    }

    public func barrier() { check(MPI_Barrier(communicator), "MPI_Barrier") }

    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(logPrefix)\(message)\n".utf8))
        MPI_Abort(ptune_mpi_comm_world(), 1)
        exit(1)
    }

    fileprivate func check(_ status: Int32, _ call: String) {
        if status != MPI_SUCCESS { abort("\(call) failed with status \(status)") }
    }
}

/// An `MPI_Iallreduce` in flight.
private final class MPIPendingReduction: PendingReduction {
    private let owner: MPICommunicator
    var request = ptune_mpi_request_null()
    private var complete = false

    init(owner: MPICommunicator) { self.owner = owner }

    func poll() -> Bool {
        guard !complete else { return true }
        var flag: Int32 = 0
        owner.check(MPI_Test(&request, &flag, ptune_mpi_status_ignore()), "MPI_Test")
        complete = flag != 0
        return complete
    }

    func wait() {
        guard !complete else { return }
        owner.check(MPI_Wait(&request, ptune_mpi_status_ignore()), "MPI_Wait")
        complete = true
    }
}

/// A 64-bit integer in an MPI window on rank 0, advanced with `MPI_Fetch_and_op` under a shared
/// passive-target lock, so a rank takes the next number without rank 0 doing anything.
private final class MPICounter: SharedCounter {
    private let owner: MPICommunicator
    private var window = ptune_mpi_win_null()

    /// Nil when the window cannot be made (errors must be returned on `communicator`).
    init?(owner: MPICommunicator, communicator: MPI_Comm) {
        self.owner = owner
        var memory: UnsafeMutableRawPointer?
        let bytes = owner.rank == 0 ? MemoryLayout<Int64>.size : 0
        guard MPI_Win_allocate(MPI_Aint(bytes), Int32(MemoryLayout<Int64>.size), ptune_mpi_info_null(), communicator,
                               &memory, &window) == MPI_SUCCESS else { return nil }
        if owner.rank == 0 { memory!.storeBytes(of: 0, as: Int64.self) }
        owner.barrier()   // the counter is zero before anyone reads it
    }

    func fetchAndAdd(_ amount: Int) -> Int {
        var operand = Int64(amount), previous: Int64 = 0
        owner.check(MPI_Win_lock(ptune_mpi_lock_shared(), 0, 0, window), "MPI_Win_lock")
        owner.check(MPI_Fetch_and_op(&operand, &previous, ptune_mpi_int64(), 0, 0, ptune_mpi_sum(), window), "MPI_Fetch_and_op")
        owner.check(MPI_Win_unlock(0, window), "MPI_Win_unlock")
        return Int(previous)
    }

    func free() { owner.check(MPI_Win_free(&window), "MPI_Win_free") }
}
