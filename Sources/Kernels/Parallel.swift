import CDNNL
import Foundation

/// How many threads the kernels split their work over.
///
/// One set of threads does everything: oneDNN's products run on its OpenMP workers, and
/// `parallelFor` hands the element-wise kernels to the same workers (`GOMP_parallel`), so no
/// second pool spins against the first for the cores (OpenBLAS's spinning workers beside
/// Dispatch's once cost a sixth of a step here). The count comes from `PTUNE_THREADS`, else
/// `OMP_NUM_THREADS`, else the cores of the machine (launch.sh sets it per rank).
public enum Parallelism {
    public static let threads: Int = {
        let environment = ProcessInfo.processInfo.environment
        let requested = ["PTUNE_THREADS", "OMP_NUM_THREADS"].lazy.compactMap { environment[$0].flatMap(Int.init) }.first
        let count = max(1, requested ?? ProcessInfo.processInfo.activeProcessorCount)
        omp_set_num_threads(Int32(count))
        return count
    }()
}

/// Runs `body` over consecutive ranges that cover 0..<count, one per thread, each at least
/// `minimumChunk` long (fewer threads for small work); ranges never overlap.
@inline(__always)
public func parallelFor(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    parallelChunks(count, minimumChunk: minimumChunk) { _, range in body(range) }
}

/// As `parallelFor`, also passing the chunk's index (below `Parallelism.threads`), for
/// per-thread scratch space.
public func parallelChunks(_ count: Int, minimumChunk: Int = 1, _ body: (Int, Range<Int>) -> Void) {
    let chunks = min(Parallelism.threads, max(1, count / max(minimumChunk, 1)))
    if chunks <= 1 {
        if count > 0 { body(0, 0..<count) }
        return
    }
    withoutActuallyEscaping(body) { body in
        var job = ParallelJob(count: count, chunks: chunks, body: body)
        withUnsafeMutablePointer(to: &job) { job in
            GOMP_parallel({ runParallelJob($0!.assumingMemoryBound(to: ParallelJob.self)) }, job, UInt32(chunks), 0)
        }
    }
}

private struct ParallelJob {
    let count: Int, chunks: Int
    let body: (Int, Range<Int>) -> Void
}

/// One OpenMP thread's share of a job. A nested call (from inside another parallel region)
/// gets a team of one, so each thread takes every team-size-th chunk rather than assuming a team per chunk.
private func runParallelJob(_ job: UnsafeMutablePointer<ParallelJob>) {
    let (count, chunks) = (job.pointee.count, job.pointee.chunks)
    let team = Int(omp_get_num_threads())
    for chunk in stride(from: Int(omp_get_thread_num()), to: chunks, by: team) {
        let start = count * chunk / chunks, end = count * (chunk + 1) / chunks
        if start < end { job.pointee.body(chunk, start..<end) }
    }
}
