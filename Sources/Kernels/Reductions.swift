/// Row reductions eight lanes at a time. A plain `sum += x[i]` loop cannot be vectorised
/// (float addition is not associative, so the compiler keeps the order) and waits on each
/// add's latency; these keep two 8-lane accumulators and combine them at the end.
/// Their rounding differs from a sequential sum's by a few ulps.

/// Eight floats, one AVX register.
public typealias Lanes = SIMD8<Float>

/// Eight floats from pointer[index...].
@inline(__always)
func load(_ pointer: UnsafePointer<Float>, _ index: Int) -> Lanes {
    UnsafeRawPointer(pointer + index).loadUnaligned(as: Lanes.self)
}

@inline(__always)
func load(_ pointer: UnsafeMutablePointer<Float>, _ index: Int) -> Lanes { load(UnsafePointer(pointer), index) }

/// Writes eight floats to pointer[index...].
@inline(__always)
func store(_ value: Lanes, _ pointer: UnsafeMutablePointer<Float>, _ index: Int) {
    UnsafeMutableRawPointer(pointer + index).storeBytes(of: value, as: Lanes.self)
}

/// Σ x[i] · y[i] over i < count.
@inline(__always)
public func dotProduct(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
    var a = Lanes(), b = Lanes(), i = 0
    while i + 16 <= count {
        a.addProduct(load(x, i), load(y, i))
        b.addProduct(load(x, i + 8), load(y, i + 8))
        i += 16
    }
    var total = (a + b).sum()
    while i < count { total += x[i] * y[i]; i += 1 }
    return total
}

/// Σ x[i] over i < count.
@inline(__always)
public func sum(_ x: UnsafePointer<Float>, count: Int) -> Float {
    var a = Lanes(), b = Lanes(), i = 0
    while i + 16 <= count {
        a += load(x, i)
        b += load(x, i + 8)
        i += 16
    }
    var total = (a + b).sum()
    while i < count { total += x[i]; i += 1 }
    return total
}

/// Σ (x[i] − center)² over i < count.
@inline(__always)
public func sumOfSquaredDeviations(_ x: UnsafePointer<Float>, from center: Float, count: Int) -> Float {
    var a = Lanes(), b = Lanes(), i = 0
    let c = Lanes(repeating: center)
    while i + 16 <= count {
        let d = load(x, i) - c, e = load(x, i + 8) - c
        a.addProduct(d, d)
        b.addProduct(e, e)
        i += 16
    }
    var total = (a + b).sum()
    while i < count { let d = x[i] - center; total += d * d; i += 1 }
    return total
}

/// The largest x[i] among i < count with mask[i] ≠ 0; −∞ when every entry is masked.
@inline(__always)
public func maskedMaximum(_ x: UnsafePointer<Float>, mask: UnsafePointer<Float>, count: Int) -> Float {
    let lowest = Lanes(repeating: -.infinity)
    var a = lowest, i = 0
    while i + 8 <= count {
        let v = load(x, i).replacing(with: -.infinity, where: load(mask, i) .== 0)
        a.replace(with: v, where: v .> a)
        i += 8
    }
    var result = a.max()
    while i < count { if mask[i] != 0 { result = max(result, x[i]) }; i += 1 }
    return result
}
