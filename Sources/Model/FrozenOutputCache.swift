import Kernels

/// The output of the layers below the lowest trainable one, kept per sequence key (a training
/// example's index) so later epochs read it instead of recomputing those layers.
///
/// Only valid when those layers are deterministic: with a cache, `BertEncoder.forward` runs them
/// without dropout, as in evaluation (PyTorch's train mode would drop there too, so this is a
/// choice the user makes). Each sequence keeps its real positions only, C floats each.
public final class FrozenOutputCache {
    /// The layer whose output is kept; a pass that keeps another's empties the cache.
    private var layer: Int?
    private var outputs: [UInt64: [Float]] = [:]
    /// Floats held, for reporting memory.
    public private(set) var floats = 0

    public init() {}

    /// Sequences held.
    public var count: Int { outputs.count }

    /// The kept output of the sequence with `key`: its positions × C floats, or nil.
    public func output(of key: UInt64) -> [Float]? { outputs[key] }

    /// Prepares for a pass that keeps layer `index`'s output; true when every key is held.
    func holdsAll(_ keys: [UInt64], layer index: Int) -> Bool {
        if layer != index {
            outputs.removeAll()
            floats = 0
            layer = index
        }
        return keys.allSatisfy { outputs[$0] != nil }
    }

    /// Keeps the first `lengths[b]` rows of each sequence b of `output` (B, positions, C) not yet held.
    func store(_ output: UnsafePointer<Float>, keys: [UInt64], lengths: [Int], positions: Int, channels: Int) {
        for (b, key) in keys.enumerated() where outputs[key] == nil {
            let start = output + b * positions * channels
            outputs[key] = Array(UnsafeBufferPointer(start: start, count: lengths[b] * channels))
            floats += lengths[b] * channels
        }
    }

    /// Writes each sequence's kept rows into `output` (B, positions, C), zeros after them
    /// (padding, which attention masks out and no loss reads).
    func read(into output: UnsafeMutablePointer<Float>, keys: [UInt64], positions: Int, channels: Int) {
        for (b, key) in keys.enumerated() {
            let rows = outputs[key]!, start = output + b * positions * channels
            rows.withUnsafeBufferPointer { start.update(from: $0.baseAddress!, count: rows.count) }
            (start + rows.count).update(repeating: 0, count: positions * channels - rows.count)
        }
    }
}
