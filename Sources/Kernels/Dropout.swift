/// Seeded, counter-based dropout.
///
/// Whether element `i` is kept depends only on `(seed, i)`: the backward pass
/// regenerates the forward pass's mask instead of storing it, and every rank or
/// resumed run that uses the same seed drops the same elements.
public struct Dropout: Sendable {
    /// Probability of zeroing an element, in [0, 1).
    public let rate: Float
    /// Seed of this use (mix in the step and the site so each use differs).
    public let seed: UInt64
    private let threshold: UInt16

    public init(rate: Float, seed: UInt64) {
        precondition(rate >= 0 && rate < 1, "dropout rate \(rate) outside [0, 1)")
        self.rate = rate
        self.seed = seed
        threshold = UInt16(min(Double(rate) * 65536, 65535))
    }

    /// Factor applied to kept elements, so the expectation is unchanged.
    public var scale: Float { 1 / (1 - rate) }

    /// Calls `body(i, kept)` for every i in `range`, in order. One 64-bit hash decides four
    /// consecutive elements (16 bits each), so masks cost a quarter of a hash per element.
    @inline(__always)
    public func forEachMask(in range: Range<Int>, _ body: (Int, Bool) -> Void) {
        var i = range.lowerBound
        while i < range.upperBound {
            let word = mix(seed &+ UInt64(truncatingIfNeeded: i >> 2) &* 0x9E37_79B9_7F4A_7C15)
            let end = min(range.upperBound, (i | 3) + 1)
            while i < end {
                body(i, UInt16(truncatingIfNeeded: word >> (UInt64(i & 3) &* 16)) >= threshold)
                i += 1
            }
        }
    }

    /// A dropout for another site or step, derived from this one's seed.
    public func derived(_ salt: UInt64) -> Dropout {
        Dropout(rate: rate, seed: mix(seed ^ mix(salt &+ 0xD1B5_4A32_D192_ED03)))
    }
}

/// SplitMix64's finaliser: a cheap, well-mixed 64-bit hash.
@inline(__always)
func mix(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// out = x · mask · scale, with the mask drawn from `dropout`.
public func dropoutForward(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int, dropout: Dropout
) {
    let scale = dropout.scale
    parallelFor(count, minimumChunk: 8192) { range in
        dropout.forEachMask(in: range) { i, kept in out[i] = kept ? inp[i] * scale : 0 }
    }
}

/// Dropout backward: dinp += dout · mask · scale, regenerating the forward's mask.
public func dropoutBackward(
    dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, count: Int, dropout: Dropout
) {
    let scale = dropout.scale
    parallelFor(count, minimumChunk: 8192) { range in
        dropout.forEachMask(in: range) { i, kept in if kept { dinp[i] += dout[i] * scale } }
    }
}

/// Dropout over a batch of sequences, each sequence's mask drawn from its own key.
///
/// A sequence then drops the same elements whatever batch it sits in, so a rank's share of
/// a global batch drops exactly what the whole batch would in one process.
public struct SequenceDropout: Sendable {
    public let rate: Float
    public let seed: UInt64
    /// One key per sequence of the batch (the example's index in its data set, say).
    public let keys: [UInt64]

    public init(rate: Float, seed: UInt64, keys: [UInt64]) {
        self.rate = rate
        self.seed = seed
        self.keys = keys
    }

    /// The masks of another site of the same pass.
    public func site(_ salt: UInt64) -> SequenceDropout {
        SequenceDropout(rate: rate, seed: mix(seed ^ mix(salt &+ 0xA076_1D64_78BD_642F)), keys: keys)
    }

    /// The same masks' source at another rate; nil when the rate is 0 (no dropout).
    public func rate(_ rate: Float) -> SequenceDropout? {
        rate > 0 ? SequenceDropout(rate: rate, seed: seed, keys: keys) : nil
    }

    /// Sequence b's dropout.
    public func sequence(_ b: Int) -> Dropout { Dropout(rate: rate, seed: seed).derived(keys[b]) }

    /// out = dropout(inp) over (B, n): n elements per sequence.
    public func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, elementsPerSequence n: Int) {
        for b in keys.indices { dropoutForward(out: out + b * n, inp: inp + b * n, count: n, dropout: sequence(b)) }
    }

    /// dinp += dropout backward of dout over (B, n).
    public func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, elementsPerSequence n: Int) {
        for b in keys.indices { dropoutBackward(dinp: dinp + b * n, dout: dout + b * n, count: n, dropout: sequence(b)) }
    }
}
