import Foundation
import Kernels
import Model

/// Sums the trainable parameters' gradients over the ranks, packed into flat buckets so
/// each bucket is one all-reduce; only trainable parameters are exchanged (a prompt is
/// tens of kilobytes where the model is tens of megabytes).
///
/// Buckets are ordered as the backward pass finishes them (head first, then the layers from
/// the top down, then embeddings and prompts), so a bucket's non-blocking all-reduce starts
/// as soon as its layer is done (`layerFinished`) and runs while the layers below compute.
public final class GradientExchange {
    /// A run of gradient floats `at` in a bucket, copied from `parameter`'s gradient at `offset`.
    private struct Piece {
        let parameter: Parameter
        let offset: Int, count: Int, at: Int
    }
    private struct Bucket {
        let buffer: Tensor
        let pieces: [Piece]
        /// The bucket can start once backward has finished this layer (see `gradientFinalAfterLayer`).
        let readyAfterLayer: Int
    }

    public let communicator: Communicator
    public let parameters: [Parameter]
    private let buckets: [Bucket]
    private var inFlight: [PendingReduction] = []
    /// Seconds spent summing gradients so far and not hidden behind the backward pass
    /// (the communication share of the steps).
    public private(set) var seconds = 0.0

    /// - Parameter bucketFloats: floats per all-reduce; large enough that per-call latency is
    ///   small, small enough that the first buckets start early in the backward pass.
    public init(communicator: Communicator, parameters: [Parameter], bucketFloats: Int = 1 << 22) {
        self.communicator = communicator
        self.parameters = parameters
        guard communicator.size > 1 else { buckets = []; return }
        let stage = { (parameter: Parameter) in parameter.gradientFinalAfterLayer ?? Int.min }
        let ordered = parameters.enumerated().sorted { (stage($0.element), -$0.offset) > (stage($1.element), -$1.offset) }
            .map(\.element)
        var buckets: [Bucket] = []
        var pieces: [Piece] = [], filled = 0, bucketStage = Int.max
        func close() {
            guard filled > 0 else { return }
            buckets.append(Bucket(buffer: Tensor(shape: [filled]), pieces: pieces, readyAfterLayer: bucketStage))
            pieces = []
            filled = 0
        }
        for parameter in ordered where parameter.isTrainable {
            if stage(parameter) != bucketStage { close(); bucketStage = stage(parameter) }
            var offset = 0
            while offset < parameter.value.count {
                if filled == bucketFloats { close() }
                let count = min(parameter.value.count - offset, bucketFloats - filled)
                pieces.append(Piece(parameter: parameter, offset: offset, count: count, at: filled))
                filled += count
                offset += count
            }
        }
        close()
        self.buckets = buckets
    }

    /// Bytes each rank sends into the all-reduce per step.
    public var bytesPerStep: Int { parameters.reduce(0) { $0 + $1.value.count } * MemoryLayout<Float>.size }

    /// Tells the exchange that backward has finished `layer` (and everything above it): the
    /// buckets whose gradients are now final start their all-reduce, and those in flight advance.
    public func layerFinished(_ layer: Int) {
        guard communicator.size > 1 else { return }
        let start = ContinuousClock.now
        defer { seconds += (ContinuousClock.now - start).seconds }
        while inFlight.count < buckets.count, buckets[inFlight.count].readyAfterLayer >= layer { startNextBucket() }
        for pending in inFlight { _ = pending.poll() }
    }

    /// Replaces every rank's gradients with their sum over the ranks: starts the buckets not yet
    /// started, waits for all, and copies the sums back.
    public func sumGradients() {
        guard communicator.size > 1 else { return }
        let start = ContinuousClock.now
        defer { seconds += (ContinuousClock.now - start).seconds }
        while inFlight.count < buckets.count { startNextBucket() }
        for (bucket, pending) in zip(buckets, inFlight) {
            pending.wait()
            for piece in bucket.pieces {
                (piece.parameter.gradient!.data + piece.offset).update(from: bucket.buffer.data + piece.at, count: piece.count)
            }
        }
        inFlight.removeAll(keepingCapacity: true)
    }

    private func startNextBucket() {
        let bucket = buckets[inFlight.count]
        for piece in bucket.pieces {
            (bucket.buffer.data + piece.at).update(from: piece.parameter.gradient!.data + piece.offset, count: piece.count)
        }
        inFlight.append(communicator.startAllReduceSum(bucket.buffer.data, count: bucket.buffer.count))
    }

    /// Copies rank 0's parameter values to every rank (initial values, so all ranks start equal).
    public func broadcastValues() {
        guard communicator.size > 1 else { return }
        for parameter in parameters { communicator.broadcast(parameter.value.data, count: parameter.value.count, root: 0) }
    }

    /// A hash of the parameter values' bits (FNV-1a), equal on every rank while they agree.
    public func valuesHash() -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for parameter in parameters {
            for i in 0..<parameter.value.count {
                hash = (hash ^ UInt64(parameter.value[i].bitPattern)) &* 0x0000_0100_0000_01B3
            }
        }
        return hash
    }

    /// Stops every rank with a clear message if the ranks' parameters have drifted apart.
    public func checkConsistent(step: Int) {
        guard communicator.size > 1 else { return }
        let hashes = communicator.allGather(withUnsafeBytes(of: valuesHash()) { Data($0) })
        guard Set(hashes).count == 1 else {
            let listing = hashes.enumerated().map { "rank \($0.offset): \($0.element.map { String(format: "%02x", $0) }.joined())" }
            communicator.abort("trainable parameters differ between ranks at step \(step) (\(listing.joined(separator: ", "))); "
                               + "the ranks no longer train the same model")
        }
    }
}
