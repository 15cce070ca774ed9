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

    /// Calls `block(i, low, high)` with the factors (`scale` when kept, 0 when dropped) of
    /// elements i..<i+8 and i+8..<i+16 for every whole 16-element block in `range` (i a multiple
    /// of 16), and `single(i, factor)` for the elements before and after them.
    ///
    /// Element i's 16 random bits are one half of a 32-bit hash of the counter i / 16 · 8 + i % 8
    /// (low half for i % 16 < 8, high half otherwise): a block's eight hashes are computed in
    /// eight lanes at once, where a 64-bit hash per element pair cost a tenth of a step.
    @inline(__always)
    public func forEachFactor(in range: Range<Int>, block: (Int, Lanes, Lanes) -> Void, single: (Int, Float) -> Void) {
        let scale = self.scale, keys = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        func factor(_ i: Int) -> Float {
            let bits = hash32(UInt32(truncatingIfNeeded: (i >> 4) << 3 | (i & 7)), keys)
            return UInt16(truncatingIfNeeded: i & 8 == 0 ? bits : bits >> 16) >= threshold ? scale : 0
        }
        let firstBlock = min((range.lowerBound + 15) & ~15, range.upperBound)
        let lastBlock = max(range.upperBound & ~15, firstBlock)
        for i in range.lowerBound..<firstBlock { single(i, factor(i)) }
        let lane = SIMD8<UInt32>(0, 1, 2, 3, 4, 5, 6, 7), limit = SIMD8<UInt32>(repeating: UInt32(threshold))
        let kept = Lanes(repeating: scale), dropped = Lanes()
        var i = firstBlock
        while i < lastBlock {
            let bits = hash32(SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: i >> 1)) &+ lane, keys)
            block(i, dropped.replacing(with: kept, where: bits & 0xFFFF .>= limit),
                  dropped.replacing(with: kept, where: bits &>> 16 .>= limit))
            i += 16
        }
        for i in lastBlock..<range.upperBound { single(i, factor(i)) }
    }

    /// A dropout for another site or step, derived from this one's seed.
    public func derived(_ salt: UInt64) -> Dropout {
        Dropout(rate: rate, seed: mix(seed ^ mix(salt &+ 0xD1B5_4A32_D192_ED03)))
    }
}

/// Two rounds of MurmurHash3's 32-bit finaliser keyed by the seed's halves: a counter-based
/// hash with full avalanche, in integer operations a vector unit has (AVX2 multiplies 32-bit lanes).
@inline(__always)
func hash32<H: SIMD>(_ counter: H, _ keys: (UInt32, UInt32)) -> H where H.Scalar == UInt32 {
    func finalise(_ value: H) -> H {
        var x = value
        x ^= x &>> 16
        x &*= H(repeating: 0x85EB_CA6B)
        x ^= x &>> 13
        x &*= H(repeating: 0xC2B2_AE35)
        return x ^ (x &>> 16)
    }
    return finalise(finalise(counter ^ H(repeating: keys.0)) ^ H(repeating: keys.1))
}

@inline(__always)
func hash32(_ counter: UInt32, _ keys: (UInt32, UInt32)) -> UInt32 { hash32(SIMD2<UInt32>(repeating: counter), keys)[0] }

/// SplitMix64's finaliser: a cheap, well-mixed 64-bit hash.
@inline(__always)
func mix(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// out = x · mask · scale, with the mask drawn from `dropout`; split over the threads unless
/// `parallel` is false (a caller that already runs one per thread).
public func dropoutForward(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int, dropout: Dropout, parallel: Bool = true
) {
    parallelFor(count, minimumChunk: parallel ? 8192 : Int.max) { range in
        dropout.forEachFactor(in: range, block: { i, low, high in
            store(load(inp, i) * low, out, i)
            store(load(inp, i + 8) * high, out, i + 8)
        }, single: { i, factor in out[i] = inp[i] * factor })
    }
}

/// Dropout backward: dinp += dout · mask · scale, regenerating the forward's mask.
public func dropoutBackward(
    dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, count: Int, dropout: Dropout
) {
    parallelFor(count, minimumChunk: 8192) { range in
        dropout.forEachFactor(in: range, block: { i, low, high in
            store(load(dinp, i) + load(dout, i) * low, dinp, i)
            store(load(dinp, i + 8) + load(dout, i + 8) * high, dinp, i + 8)
        }, single: { i, factor in dinp[i] += dout[i] * factor })
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
