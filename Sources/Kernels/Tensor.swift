#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A contiguous, row-major float32 buffer with a shape.
///
/// A reference type on purpose: kernels write through `data`, and a model's
/// parameters, gradients and activations are shared by name between the
/// optimizer, the gradient exchange and the adapter files without copies.
public final class Tensor {
    /// Extent of each dimension, outermost first.
    public let shape: [Int]
    /// Number of elements (the product of `shape`).
    public let count: Int
    /// The elements, 64-byte aligned for BLAS.
    public let data: UnsafeMutablePointer<Float>

    /// A zero-filled tensor of the given shape.
    public init(shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        data.initialize(repeating: 0, count: max(count, 1))
    }

    /// A tensor holding `values`, whose count must match `shape`.
    public convenience init(shape: [Int], values: [Float]) {
        self.init(shape: shape)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    deinit { UnsafeMutableRawPointer(data).deallocate() }

    /// The elements as a buffer, for iteration.
    public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: data, count: count)
    }

    /// A copy of the elements as an array.
    public var array: [Float] { Array(buffer) }

    /// Whether no element is NaN or infinite.
    public var isFinite: Bool { buffer.allSatisfy(\.isFinite) }

    /// Sets every element to zero.
    public func zero() { data.update(repeating: 0, count: count) }

    /// Sets the first `count` elements to zero: the part of a buffer planned for a larger
    /// shape that the current one uses.
    public func zero(first count: Int) {
        precondition(count <= self.count, "\(count) elements of \(self.count)")
        data.update(repeating: 0, count: count)
    }

    /// Copies every element of `other`, which must have the same count.
    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy between counts \(other.count) and \(count)")
        data.update(from: other.data, count: count)
    }

    /// Whether `other` has this shape and bit for bit these elements.
    public func holdsSameValues(as other: Tensor) -> Bool {
        shape == other.shape && memcmp(data, other.data, count * MemoryLayout<Float>.stride) == 0
    }

    public subscript(index: Int) -> Float {
        get { data[index] }
        set { data[index] = newValue }
    }
}
