import Foundation

/// Typed access to a JSON object's fields, with errors naming the file and the field.
public struct JSONFields {
    public let json: [String: Any]
    public let source: String
    public init(_ json: [String: Any], source: String) {
        self.json = json
        self.source = source
    }

    /// The JSON object in the file at `path`: invalid UTF-8 and JSON errors name the line.
    public init(contentsOf path: String) throws {
        let text = try TextFile.text(path)
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(text.utf8))
        } catch {
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw InputError(path, "not valid JSON" + (reason.map { " (\($0))" } ?? ""))
        }
        guard let object = parsed as? [String: Any] else { throw InputError(path, "not a JSON object") }
        self.init(object, source: path)
    }

    private func value<T>(_ key: String, _ type: String, default fallback: T?, _ convert: (Any) -> T?) throws -> T {
        guard let raw = json[key], !(raw is NSNull) else {
            if let fallback { return fallback }
            throw InputError(source, "missing field '\(key)'")
        }
        guard let typed = convert(raw) else { throw InputError(source, "field '\(key)' is not \(type)") }
        return typed
    }

    public func string(_ key: String, default fallback: String? = nil) throws -> String {
        try value(key, "a string", default: fallback) { $0 as? String }
    }
    public func int(_ key: String, default fallback: Int? = nil) throws -> Int {
        try value(key, "an integer", default: fallback) { ($0 as? NSNumber).flatMap { Int(exactly: $0.doubleValue) } }
    }
    public func float(_ key: String, default fallback: Float? = nil) throws -> Float {
        try value(key, "a number", default: fallback) { ($0 as? NSNumber).map { Float($0.doubleValue) } }
    }
    public func bool(_ key: String, default fallback: Bool? = nil) throws -> Bool {
        try value(key, "true or false", default: fallback) { $0 as? Bool }
    }
    public func strings(_ key: String) throws -> [String] {
        try value(key, "a list of strings", default: nil) { ($0 as? [String]) ?? ($0 as? String).map { [$0] } }
    }
    public func ints(_ key: String) throws -> [Int] {
        try value(key, "a list of integers", default: nil) { $0 as? [Int] }
    }
}

/// Codable readers of the files whose fields are fixed (a model's `config.json`, a task spec):
/// decoding errors become one line naming the file and the field.
public enum JSONFile {
    /// The `T` in the JSON file at `path` (UTF-8, optional byte-order mark).
    public static func decode<T: Decodable>(_ type: T.Type, from path: String) throws -> T {
        let data = Data(try TextFile.text(path).utf8)
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let error as DecodingError {
            throw InputError(path, describe(error))
        }
    }

    private static func field(_ path: [CodingKey]) -> String {
        path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            .replacingOccurrences(of: ".[", with: "[")
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case let .keyNotFound(key, context): "missing field '\(field(context.codingPath + [key]))'"
        case let .valueNotFound(_, context): "field '\(field(context.codingPath))' is null"
        case let .typeMismatch(_, context) where context.codingPath.isEmpty: "not a JSON object"
        case let .typeMismatch(type, context): "field '\(field(context.codingPath))' is not \(name(type))"
        case let .dataCorrupted(context) where context.codingPath.isEmpty:
            "not valid JSON"
                + ((context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey].map { " (\($0))" } ?? "")
        case let .dataCorrupted(context):
            // The readers' own refusals name their field; Foundation's do not.
            context.debugDescription.contains(field(context.codingPath)) ? context.debugDescription
                : "field '\(field(context.codingPath))': \(context.debugDescription)"
        @unknown default: "\(error)"
        }
    }

    private static func name(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is Int.Type: "an integer"
        case is Float.Type, is Double.Type: "a number"
        case is [Any].Type, is [String].Type: "a list"
        default: "\(type)"
        }
    }
}
