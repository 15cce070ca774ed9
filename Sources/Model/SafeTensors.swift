import Foundation
import Kernels

/// Element types of the safetensors format, with their sizes in bytes.
public enum SafeTensorsDType: String, Sendable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    public var size: Int {
        switch self {
        case .f64, .i64: 8
        case .f32, .i32: 4
        case .f16, .bf16, .i16: 2
        case .i8, .u8, .bool: 1
        }
    }

    /// Whether `readFloats` converts it (a float type).
    public var isFloat: Bool { [.f64, .f32, .f16, .bf16].contains(self) }
}

/// Where one tensor lies in a safetensors file.
public struct SafeTensorInfo: Sendable {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    /// Byte range within the data section (after the header).
    public let begin: Int, end: Int
    public var count: Int { shape.reduce(1, *) }
}

/// A memory-mapped safetensors file, validated when opened.
///
/// Checks that the header fits the file, that every entry's dtype is known, that its
/// byte range matches its shape and lies inside the data section, and that no two
/// ranges overlap; any failure is an `InputError` naming the file and the problem.
public final class SafeTensorsFile {
    public let path: String
    /// The tensors, by name.
    public let tensors: [String: SafeTensorInfo]
    /// The header's `__metadata__` strings.
    public let metadata: [String: String]
    private let mapping: UnsafeMutableRawPointer
    private let mappedLength: Int
    private let dataStart: UnsafeRawPointer

    /// Names of the tensors, sorted.
    public var names: [String] { tensors.keys.sorted() }

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw InputError(path, "cannot open (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw InputError(path, "cannot stat") }
        let fileSize = Int(status.st_size)
        guard fileSize >= 8 else {
            throw InputError(path, "truncated: \(fileSize) bytes, shorter than the 8-byte header length")
        }
        guard let mapped = mmap(nil, fileSize, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw InputError(path, "cannot memory-map (\(String(cString: strerror(errno))))")
        }
        mapping = mapped
        mappedLength = fileSize
        // From here on, a throw must unmap: deinit does not run for a failed init.
        do {
            let declared = UInt64(littleEndian: mapped.loadUnaligned(as: UInt64.self))
            guard declared <= UInt64(fileSize - 8) else {
                throw InputError(path, "header length \(declared) exceeds the file's \(fileSize - 8) bytes after it; file truncated?")
            }
            let headerLength = Int(declared)
            dataStart = UnsafeRawPointer(mapped + 8 + headerLength)
            let headerBytes = Data(bytes: mapped + 8, count: headerLength)
            (tensors, metadata) = try Self.parseHeader(headerBytes, dataSize: fileSize - 8 - headerLength, path: path)
        } catch {
            munmap(mapped, fileSize)
            throw error
        }
    }

    deinit { munmap(mapping, mappedLength) }

    private static func parseHeader(
        _ header: Data, dataSize: Int, path: String
    ) throws -> ([String: SafeTensorInfo], [String: String]) {
        guard let json = try? JSONSerialization.jsonObject(with: header), let entries = json as? [String: Any] else {
            throw InputError(path, "header is not a JSON object")
        }
        var tensors: [String: SafeTensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in entries {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let entry = value as? [String: Any],
                  let dtypeName = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int],
                  let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else { throw InputError(path, "tensor '\(name)': header entry needs dtype, shape and two data_offsets") }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                throw InputError(path, "tensor '\(name)': unknown dtype '\(dtypeName)'")
            }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw InputError(path, "tensor '\(name)': negative dimension in shape \(shape)") }
            let (begin, end) = (offsets[0], offsets[1])
            // Checked products: a shape from a hostile header may overflow Int.
            var expected: Int? = dtype.size
            for dimension in shape {
                expected = expected.flatMap { size in
                    let (product, overflow) = size.multipliedReportingOverflow(by: dimension)
                    return overflow || product > dataSize ? nil : product
                }
            }
            guard let expected else {
                throw InputError(path, "tensor '\(name)': shape \(shape) of \(dtypeName) needs more bytes than the file holds")
            }
            guard begin >= 0, end >= begin, end - begin == expected else {
                throw InputError(path, "tensor '\(name)': data_offsets [\(begin), \(end)] hold \(end - begin) bytes but shape \(shape) of \(dtypeName) needs \(expected)")
            }
            guard end <= dataSize else {
                throw InputError(path, "tensor '\(name)': data_offsets [\(begin), \(end)] run past the data section's \(dataSize) bytes; file truncated?")
            }
            tensors[name] = SafeTensorInfo(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
        }
        let ordered = tensors.values.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where next.begin < previous.end {
            throw InputError(path, "tensors '\(previous.name)' and '\(next.name)' overlap in the data section")
        }
        return (tensors, metadata)
    }

    /// The entry for `name`, or an error naming the file and the missing tensor.
    public func info(_ name: String) throws -> SafeTensorInfo {
        guard let info = tensors[name] else { throw InputError(path, "missing tensor '\(name)'") }
        return info
    }

    /// Copies tensor `name` into `destination` (count elements) as float32,
    /// converting from F32, F16, BF16 or F64.
    public func readFloats(_ name: String, into destination: UnsafeMutablePointer<Float>) throws {
        let info = try info(name)
        let source = dataStart + info.begin
        switch info.dtype {
        case .f32:
            // Byte copy: the data section need not be 4-byte aligned. (Little-endian hosts only, as the format.)
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: 4 * info.count)
        case .f16:
            for i in 0..<info.count {
                destination[i] = Float(Float16(bitPattern: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .bf16:
            for i in 0..<info.count {
                let bits = UInt32(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16
                destination[i] = Float(bitPattern: bits)
            }
        case .f64:
            for i in 0..<info.count { destination[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        default:
            throw InputError(path, "tensor '\(name)': dtype \(info.dtype.rawValue) is not a float type")
        }
    }

    /// Copies tensor `name` into `parameter`'s value; a missing tensor or another shape is an error
    /// naming the file and the tensor.
    public func read(_ name: String, into parameter: Parameter) throws { try read([(name, parameter)]) }

    /// Copies each named tensor into its parameter, all or none: every name, shape and dtype is
    /// checked before the first value changes, so a bad file leaves the parameters as they were.
    public func read(_ pairs: [(name: String, parameter: Parameter)]) throws {
        for (name, parameter) in pairs {
            let info = try info(name)
            guard info.shape == parameter.shape else {
                throw InputError(path, "tensor '\(name)' has shape \(info.shape) but the model needs \(parameter.shape)")
            }
            guard info.dtype.isFloat else {
                throw InputError(path, "tensor '\(name)': dtype \(info.dtype.rawValue) is not a float type")
            }
        }
        for (name, parameter) in pairs { try readFloats(name, into: parameter.value.data) }
    }

    /// Tensor `name` as a new float32 tensor of its own shape.
    public func tensor(_ name: String) throws -> Tensor {
        let result = Tensor(shape: try info(name).shape)
        try readFloats(name, into: result.data)
        return result
    }

    /// Tensor `name`, which must be an integer type (I64, I32, I16, I8, U8, BOOL), as Int32 values.
    public func int32s(_ name: String) throws -> [Int32] {
        let info = try info(name)
        let source = dataStart + info.begin
        return try (0..<info.count).map { i -> Int32 in
            switch info.dtype {
            case .i64: Int32(truncatingIfNeeded: source.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
            case .i32: source.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)
            case .i16: Int32(source.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))
            case .i8: Int32(source.load(fromByteOffset: i, as: Int8.self))
            case .u8, .bool: Int32(source.load(fromByteOffset: i, as: UInt8.self))
            default: throw InputError(path, "tensor '\(name)': dtype \(info.dtype.rawValue) is not an integer type")
            }
        }
    }
}

/// Writes float32 tensors as a safetensors file, atomically: to a temporary file
/// beside the destination, then renamed over it, so a failure leaves any earlier file whole.
public func writeSafeTensors(
    _ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = ["format": "pt"], to path: String
) throws {
    var header: [String: Any] = ["__metadata__": metadata]
    var offset = 0
    let ordered = tensors.sorted { $0.name < $1.name }
    for (name, tensor) in ordered {
        let bytes = tensor.count * 4
        header[name] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
        offset += bytes
    }
    var headerData = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    // Pad with spaces so the data section starts 8-byte aligned, as the format recommends.
    while (headerData.count + 8) % 8 != 0 { headerData.append(0x20) }
    var file = Data(capacity: 8 + headerData.count + offset)
    withUnsafeBytes(of: UInt64(headerData.count).littleEndian) { file.append(contentsOf: $0) }
    file.append(headerData)
    for (_, tensor) in ordered {
        file.append(UnsafeBufferPointer(start: tensor.data, count: tensor.count))
    }
    try writeAtomically(file, to: path)
}

/// Writes `data` to a temporary file in the destination's folder, then renames it into place.
public func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let temporary = url.deletingLastPathComponent()
        .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    do {
        try data.write(to: temporary)
        guard rename(temporary.path, url.path) == 0 else {
            throw InputError(path, "cannot rename into place (\(String(cString: strerror(errno))))")
        }
    } catch {
        try? FileManager.default.removeItem(at: temporary)
        if error is InputError { throw error }
        throw InputError(path, "cannot write (\(error.localizedDescription))")
    }
}
