import Foundation
import Kernels
import Model

/// libFuzzer target: any bytes as a safetensors file. Opening validates the header; every tensor
/// it accepts must then read without touching memory outside the file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = scratchFile(Data(bytes: data, count: size))
    guard let file = try? SafeTensorsFile(path: path) else { return 0 }
    for name in file.names {
        guard let info = try? file.info(name) else { continue }
        if info.dtype == .f32 || info.dtype == .f16 || info.dtype == .bf16 || info.dtype == .f64 {
            _ = try? file.tensor(name)
        } else {
            _ = try? file.int32s(name)
        }
    }
    return 0
}
