import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The non-standard `posix_spawn` file actions that the C library may offer but the Swift overlay does not
/// declare, looked up at run time with `dlsym`.
enum SpawnExtensions {
    #if canImport(Darwin)
    typealias FileActions = UnsafeMutablePointer<posix_spawn_file_actions_t?>
    #else
    typealias FileActions = UnsafeMutablePointer<posix_spawn_file_actions_t>
    #endif
    private typealias AddChangeDirectory = @convention(c) (FileActions, UnsafePointer<CChar>) -> Int32
    private typealias AddCloseFrom = @convention(c) (FileActions, Int32) -> Int32

    private static let addChangeDirectoryFunction: AddChangeDirectory? = symbol(
        "posix_spawn_file_actions_addchdir_np"
    )
    private static let addCloseFromFunction: AddCloseFrom? = symbol("posix_spawn_file_actions_addclosefrom_np")

    /// Whether `addChangeDirectory(_:_:)` is available (glibc 2.29, musl 1.1.24, macOS 10.15 and later).
    static var canChangeDirectory: Bool { addChangeDirectoryFunction != nil }

    /// Adds a `chdir(directory)` to `fileActions`; returns `ENOSYS` where the C library lacks it.
    static func addChangeDirectory(
        _ fileActions: FileActions,
        _ directory: String
    ) -> Int32 {
        guard let addChangeDirectoryFunction else { return ENOSYS }
        return addChangeDirectoryFunction(fileActions, directory)
    }

    /// Adds the closing of every descriptor from `lowest` up to `fileActions`: atomically with
    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34 and later), otherwise one close per descriptor
    /// listed in `/proc/self/fd` (or `/dev/fd`) now.
    static func addCloseDescriptors(
        _ fileActions: FileActions,
        from lowest: Int32
    ) throws {
        if let addCloseFromFunction, addCloseFromFunction(fileActions, lowest) == 0 {
            return
        }
        let listing = FileManager.default.fileExists(atPath: "/proc/self/fd") ? "/proc/self/fd" : "/dev/fd"
        let descriptors = ((try? FileManager.default.contentsOfDirectory(atPath: listing)) ?? []).compactMap {
            Int32($0)
        }
        for descriptor in descriptors where descriptor >= lowest {
            _ = posix_spawn_file_actions_addclose(fileActions, descriptor)
        }
    }

    private static func symbol<Function>(_ name: String) -> Function? {
        guard let handle = dlopen(nil, RTLD_NOW), let address = dlsym(handle, name) else { return nil }
        return unsafeBitCast(address, to: Function.self)
    }
}
