import Foundation

/// The ranks that train together and the collective operations between them.
///
/// Two implementations behind one interface: Open MPI under `mpirun` (`MPICommunicator`) and
/// one process alone (`SingleProcess`, the debug mode), so the trainer runs the same code path
/// either way.
public protocol Communicator: AnyObject {
    /// This process's rank, 0..<size.
    var rank: Int { get }
    /// How many ranks there are.
    var size: Int { get }
    /// Sums `count` floats element-wise over every rank, in place on every rank.
    func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int)
    /// Starts summing `count` floats over every rank in place and returns at once; the buffer
    /// must stay untouched until the reduction completes.
    func startAllReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) -> PendingReduction
    /// Sums doubles element-wise over every rank, in place.
    func allReduceSum(_ values: inout [Double])
    /// Rank `root`'s floats, copied into every rank's buffer.
    func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int)
    /// Every rank's bytes, in rank order, on every rank.
    func allGather(_ bytes: Data) -> [Data]
    /// Splits into groups: ranks with the same `color` form one, ordered by `key`.
    func split(color: Int, key: Int) -> Communicator
    /// A counter on rank 0 that any rank can take numbers from without the others taking
    /// part (collective: every rank calls it, and `SharedCounter.free` later); nil on every rank
    /// when the MPI library offers no one-sided window between these processes.
    func makeCounter() -> SharedCounter?
    /// Waits until every rank arrives.
    func barrier()
    /// Ends every rank of the job with `message` (printed once) and a non-zero status.
    func abort(_ message: String) -> Never
}

/// A non-blocking reduction in flight.
public protocol PendingReduction: AnyObject {
    /// Lets the reduction advance (MPI moves non-blocking collectives only inside MPI calls);
    /// true once it is complete.
    func poll() -> Bool
    /// Returns once the reduction is complete.
    func wait()
}

/// A counter held by rank 0 of a communicator, read and advanced atomically by any rank.
public protocol SharedCounter: AnyObject {
    /// Adds `amount` and returns the value before, as one atomic step.
    func fetchAndAdd(_ amount: Int) -> Int
    /// Releases the counter (collective).
    func free()
}

/// A reduction that was complete when it started (one rank alone).
public final class CompletedReduction: PendingReduction {
    public init() {}
    public func poll() -> Bool { true }
    public func wait() {}
}

extension Communicator {
    /// Whether this rank writes the shared outputs.
    public var isRoot: Bool { rank == 0 }

    /// Rank `root`'s bytes on every rank.
    public func broadcast(_ bytes: Data, root: Int) -> Data { allGather(rank == root ? bytes : Data())[root] }

    /// A prefix for log lines that names the rank when there are several.
    public var logPrefix: String { logPrefix(group: nil) }

    /// A prefix for log lines that names the rank, and the rank group it trains in, when there are several ranks.
    public func logPrefix(group: Int?) -> String {
        guard size > 1 else { return "" }
        return "[rank \(rank)/\(size)" + (group.map { ", group \($0)" } ?? "") + "] "
    }

    /// `outcome`'s value if it succeeded on every rank; otherwise, on every rank, a
    /// `CollectiveError` naming each rank that failed and why, so rank 0 can report a failure
    /// that happened elsewhere (a file one node cannot read). Collective: every rank calls it.
    public func agreed<T>(_ outcome: Result<T, Error>) throws -> T {
        guard size > 1 else { return try outcome.get() }
        var message = ""
        if case .failure(let error) = outcome { message = "\(error)" }
        let failures = allGather(Data(message.utf8)).enumerated().compactMap { rank, bytes in
            bytes.isEmpty ? nil : "rank \(rank): \(String(decoding: bytes, as: UTF8.self))"
        }
        guard failures.isEmpty else { throw CollectiveError(failures.joined(separator: "; ")) }
        return try outcome.get()
    }
}

/// An error every rank knows of: rank 0 reports it for all of them.
public struct CollectiveError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One process alone: every collective is the identity.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {}
    public func startAllReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) -> PendingReduction { CompletedReduction() }
    public func allReduceSum(_ values: inout [Double]) {}
    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) {}
    public func allGather(_ bytes: Data) -> [Data] { [bytes] }
    public func split(color: Int, key: Int) -> Communicator { self }
    public func makeCounter() -> SharedCounter? { LocalCounter() }
    public func barrier() {}
    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        exit(1)
    }
}

/// One process's counter.
private final class LocalCounter: SharedCounter {
    private var value = 0
    func fetchAndAdd(_ amount: Int) -> Int {
        defer { value += amount }
        return value
    }
    func free() {}
}
