import Foundation
import Kernels
import Model

/// Sums the trainable parameters' gradients over the ranks, packed into flat buckets so
/// each bucket is one all-reduce; only trainable parameters are exchanged (a prompt is
/// tens of kilobytes where the model is tens of megabytes).
public final class GradientExchange {
    public let communicator: Communicator
    public let parameters: [Parameter]
    private let bucket: Tensor
    /// Seconds spent summing gradients so far (the communication share of the steps).
    public private(set) var seconds = 0.0

    /// - Parameter bucketFloats: floats per all-reduce; large enough that per-call latency is
    ///   small, small enough not to double the gradients' memory.
    public init(communicator: Communicator, parameters: [Parameter], bucketFloats: Int = 1 << 22) {
        self.communicator = communicator
        self.parameters = parameters
        let total = parameters.reduce(0) { $0 + $1.value.count }
        bucket = Tensor(shape: [communicator.size > 1 ? min(total, bucketFloats) : 0])
    }

    /// Bytes each rank sends into the all-reduce per step.
    public var bytesPerStep: Int { parameters.reduce(0) { $0 + $1.value.count } * MemoryLayout<Float>.size }

    /// Replaces every rank's gradients with their sum over the ranks.
    public func sumGradients() {
        guard communicator.size > 1 else { return }
        let start = ContinuousClock.now
        defer { seconds += (ContinuousClock.now - start).seconds }
        var pending: [(tensor: Tensor, offset: Int, count: Int, at: Int)] = []
        var filled = 0
        func flush() {
            guard filled > 0 else { return }
            communicator.allReduceSum(bucket.data, count: filled)
            for piece in pending { (piece.tensor.data + piece.offset).update(from: bucket.data + piece.at, count: piece.count) }
            pending.removeAll(keepingCapacity: true)
            filled = 0
        }
        for parameter in parameters {
            guard let gradient = parameter.gradient else { continue }
            var offset = 0
            while offset < gradient.count {
                if filled == bucket.count { flush() }
                let count = min(gradient.count - offset, bucket.count - filled)
                (bucket.data + filled).update(from: gradient.data + offset, count: count)
                pending.append((gradient, offset, count, filled))
                filled += count
                offset += count
            }
        }
        flush()
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
