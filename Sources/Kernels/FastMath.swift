/// exp(x) in plain float arithmetic, so loops over it vectorize (no library call, no rounding
/// instruction beyond SSE2): x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r from its degree-6 Taylor
/// polynomial (relative error below 4e-7, a few float32 ulps), 2^n built from exponent bits.
/// Below −87.3 it gives 0; above 88 (where 2^n would leave the exponent's range) +∞.
@inline(__always)
public func fastExp(_ x: Float) -> Float {
    let clamped = min(max(x, -87.3), 88)
    // Adding 1.5·2²³ rounds to the nearest integer and leaves it in the low mantissa bits.
    let shifted = clamped * 1.44269504 + 12_582_912
    let n = shifted - 12_582_912
    let r = clamped - n * 0.693145751953125 - n * 1.428606765330187e-06
    var p: Float = 1.0 / 720
    p = 1.0 / 120 + r * p
    p = 1.0 / 24 + r * p
    p = 1.0 / 6 + r * p
    p = 0.5 + r * p
    p = 1 + r * p
    p = 1 + r * p
    let exponent = (Int32(bitPattern: shifted.bitPattern) &- 0x4B40_0000 &+ 127) &<< 23
    let result = p * Float(bitPattern: UInt32(bitPattern: exponent))
    return x < -87.3 ? 0 : (x > 88 ? .infinity : result)
}
