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

/// Σ term(i) over i < count: `add(&accumulator, i)` adds terms i..<i+8 into an accumulator
/// (fused multiply-adds where the term is a product), `single(i)` gives term i alone (the tail).
@inline(__always)
private func laneSum(count: Int, _ add: (inout Lanes, Int) -> Void, _ single: (Int) -> Float) -> Float {
    var a = Lanes(), b = Lanes(), i = 0
    while i + 16 <= count {
        add(&a, i)
        add(&b, i + 8)
        i += 16
    }
    var total = (a + b).sum()
    while i < count { total += single(i); i += 1 }
    return total
}

/// Σ x[i] · y[i] over i < count.
@inline(__always)
public func dotProduct(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
    laneSum(count: count, { $0.addProduct(load(x, $1), load(y, $1)) }, { x[$0] * y[$0] })
}

/// Σ x[i] over i < count.
@inline(__always)
public func sum(_ x: UnsafePointer<Float>, count: Int) -> Float {
    laneSum(count: count, { $0 += load(x, $1) }, { x[$0] })
}

/// Σ (x[i] − center)² over i < count.
@inline(__always)
public func sumOfSquaredDeviations(_ x: UnsafePointer<Float>, from center: Float, count: Int) -> Float {
    let c = Lanes(repeating: center)
    return laneSum(count: count, { let d = load(x, $1) - c; $0.addProduct(d, d) }, { let d = x[$0] - center; return d * d })
}

/// Σ x[i]² over i < count, split over the threads: blocks of 8-lane float sums added in
/// double precision, so millions of terms (a model's gradient) lose nothing to rounding.
public func squaredNorm(_ x: UnsafePointer<Float>, count: Int) -> Double {
    let block = 1 << 12
    var partials = [Double](repeating: 0, count: Parallelism.threads)
    partials.withUnsafeMutableBufferPointer { partials in
        parallelChunks((count + block - 1) / block, minimumChunk: 16) { chunk, blocks in
            var total: Double = 0
            for index in blocks {
                let start = index * block
                total += Double(dotProduct(x + start, x + start, count: min(block, count - start)))
            }
            partials[chunk] = total
        }
    }
    return partials.reduce(0, +)
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
