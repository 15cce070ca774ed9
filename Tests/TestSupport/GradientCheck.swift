import Kernels
import XCTest

/// The seeded generator for test data, so every run checks the same numbers.
public typealias SeededRandom = SplitMix

extension SplitMix {
    /// A tensor of uniform values in `range`.
    public mutating func tensor(_ shape: [Int], _ range: ClosedRange<Float> = -1...1) -> Tensor {
        let t = Tensor(shape: shape)
        for i in 0..<t.count { t[i] = Float.random(in: range, using: &self) }
        return t
    }
}

/// Σ outputᵢ · weightᵢ in double precision: a scalar loss whose gradient
/// with respect to `output` is `weights`.
public func weightedSum(_ output: UnsafePointer<Float>, _ weights: Tensor) -> Double {
    var total = 0.0
    for i in 0..<weights.count { total += Double(output[i]) * Double(weights[i]) }
    return total
}

/// Checks an analytic gradient against central finite differences of `loss`
/// with respect to every element of `input`; fails the test with the worst element.
/// The allowed error is `tolerance` times the gradient's largest entry (plus a small floor),
/// the measure the reference uses.
public func checkGradient(
    _ label: String, input: Tensor, analytic: Tensor, epsilon: Float = 1e-2, tolerance: Double = 1e-2,
    file: StaticString = #filePath, line: UInt = #line, loss: () -> Double
) {
    XCTAssertEqual(input.count, analytic.count, "\(label): gradient count", file: file, line: line)
    var worst = 0.0, worstIndex = 0, scale = 0.0
    for i in 0..<input.count {
        let saved = input[i]
        input[i] = saved + epsilon
        let plus = loss()
        input[i] = saved - epsilon
        let minus = loss()
        input[i] = saved
        let numeric = (plus - minus) / (2 * Double(epsilon))
        let error = abs(numeric - Double(analytic[i]))
        scale = max(scale, abs(numeric))
        if error > worst { worst = error; worstIndex = i }
    }
    XCTAssertGreaterThan(scale, 0, "\(label): the numeric gradient is all zero, so the check proves nothing",
                         file: file, line: line)
    XCTAssertLessThanOrEqual(
        worst, tolerance * scale + 1e-4,
        "\(label): element \(worstIndex) off by \(worst) (largest gradient entry \(scale))", file: file, line: line)
}

/// The folder of files the tests read (copied from the reference; tests never read ../shared).
public let fixturesFolder: String = {
    var url = URL(fileURLWithPath: #filePath)
    url.deleteLastPathComponent()   // TestSupport
    url.deleteLastPathComponent()   // Tests
    return url.appendingPathComponent("Fixtures").path
}()

/// Path of a fixture file by name.
public func fixture(_ name: String) -> String { fixturesFolder + "/" + name }
