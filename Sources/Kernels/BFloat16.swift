/// bfloat16 storage: the upper 16 bits of a float32 (same exponent range, 8 bits of mantissa).
/// Under bf16 precision the frozen weights live here, once, and the matrix products read them.
public final class BFloat16Tensor {
    public let shape: [Int]
    public let count: Int
    /// The elements' bit patterns, 64-byte aligned.
    public let data: UnsafeMutablePointer<UInt16>

    /// The elements of `tensor`, rounded to the nearest bfloat16 (ties to even).
    public init(rounding tensor: Tensor) {
        shape = tensor.shape
        count = tensor.count
        data = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 2, alignment: 64)
            .bindMemory(to: UInt16.self, capacity: max(count, 1))
        convertToBFloat16(out: data, inp: tensor.data, count: count)
    }

    deinit { UnsafeMutableRawPointer(data).deallocate() }

    /// The elements widened back to float32.
    public func float32() -> Tensor {
        let tensor = Tensor(shape: shape)
        convertFromBFloat16(out: tensor.data, inp: data, count: count)
        return tensor
    }
}

/// out[i] = inp[i] rounded to bfloat16, to nearest with ties to even; NaN stays NaN.
/// - Parameters: out, inp: `count` elements.
public func convertToBFloat16(out: UnsafeMutablePointer<UInt16>, inp: UnsafePointer<Float>, count: Int) {
    // A plain loop over a branch-free rounding: the compiler vectorizes it (Swift's SIMD types here ran 13x slower).
    parallelFor(count, minimumChunk: 1 << 15) { range in
        for i in range { out[i] = bfloat16Bits(inp[i]) }
    }
}

/// out[i] = inp[i] widened to float32 (exact).
public func convertFromBFloat16(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<UInt16>, count: Int) {
    parallelFor(count, minimumChunk: 1 << 15) { range in
        for i in range { out[i] = bfloat16Value(inp[i]) }
    }
}

/// The float32 value of one bfloat16 bit pattern (exact).
@inline(__always)
public func bfloat16Value(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

/// One float rounded to bfloat16's bit pattern, as `convertToBFloat16` rounds.
@inline(__always)
public func bfloat16Bits(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    let rounded = (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16, quietNaN = (bits >> 16) | 0x40
    return UInt16(truncatingIfNeeded: bits & 0x7FFF_FFFF > 0x7F80_0000 ? quietNaN : rounded)
}
