import COpenBLAS
import Dispatch
import Foundation

/// How many threads the kernels split their work over.
///
/// OpenBLAS runs single-threaded and the kernels split each product and each element-wise
/// pass themselves: OpenBLAS's own threads spin between calls and fight the element-wise
/// work for the cores, which cost a sixth of a step. The count comes from `PTUNE_THREADS`,
/// else `OPENBLAS_NUM_THREADS`, else the cores of the machine (launch.sh sets it per rank).
public enum Parallelism {
    public static let threads: Int = {
        openblas_set_num_threads(1)
        let environment = ProcessInfo.processInfo.environment
        let requested = environment["PTUNE_THREADS"].flatMap(Int.init) ?? environment["OPENBLAS_NUM_THREADS"].flatMap(Int.init)
        return max(1, requested ?? ProcessInfo.processInfo.activeProcessorCount)
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
@inline(__always)
public func parallelChunks(_ count: Int, minimumChunk: Int = 1, _ body: (Int, Range<Int>) -> Void) {
    let threads = min(Parallelism.threads, max(1, count / max(minimumChunk, 1)))
    if threads <= 1 {
        if count > 0 { body(0, 0..<count) }
        return
    }
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let start = count * t / threads, end = count * (t + 1) / threads
            if start < end { body(t, start..<end) }
        }
    }
}
