import Config
import Foundation
import Logging
import Registry

let usage = """
    Usage: buildset-registry [serve|check-config|prune] [-c FILE] [-d]

    Commands:
      serve           serve the registry (the default)
      check-config    check a configuration file and list every problem in it
      prune           remove uploads abandoned for longer than the configured expiration

    Options:
      -c, --config FILE   the registry.yaml to use; without it, an embedded default:
                          127.0.0.1:9000, plain HTTP, anonymous push, storage in ./data
      -d, --debug         log routine detail too
      -h, --help          show this text

    """

var command = "serve"
var configPath: String?
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "serve", "check-config", "prune": command = argument
    case "-c", "--config":
        guard let path = arguments.popFirst() else {
            FileHandle.standardError.write(Data("buildset-registry: \(argument) needs a file\n".utf8))
            exit(2)
        }
        configPath = path
    case "-d", "--debug": Logger.threshold = .debug
    case "-h", "--help":
        print(usage, terminator: "")
        exit(0)
    default:
        FileHandle.standardError.write(Data("buildset-registry: unknown argument \(argument)\n\n\(usage)".utf8))
        exit(2)
    }
}

let logger = Logger(label: "buildset-registry")
let configuration: RegistryConfiguration
if let configPath {
    do {
        let (loaded, warnings) = try RegistryConfiguration.load(path: configPath)
        for warning in warnings { FileHandle.standardError.write(Data("\(warning)\n".utf8)) }
        configuration = loaded
    } catch {
        FileHandle.standardError.write(Data("\(error)\n".utf8))
        exit(1)
    }
} else {
    if command == "check-config" {
        FileHandle.standardError.write(Data("buildset-registry: check-config needs -c FILE\n".utf8))
        exit(2)
    }
    configuration = .embeddedDefault
}

switch command {
case "check-config":
    do {
        try Launcher.check(configuration)
        print("\(configPath ?? ""): ok")
    } catch {
        FileHandle.standardError.write(Data("\(configPath ?? ""): error: \(error)\n".utf8))
        exit(1)
    }
case "prune":
    do {
        try Launcher.prune(configuration, logger: logger)
    } catch {
        logger.error("prune failed", ["error": "\(error)"])
        exit(1)
    }
default:
    // SIGTERM and SIGINT are blocked before any thread starts, so every thread inherits the mask and the signals
    // wait for the main thread's sigwait instead of landing on a library thread.
    var stopSignals = sigset_t()
    sigemptyset(&stopSignals)
    sigaddset(&stopSignals, SIGTERM)
    sigaddset(&stopSignals, SIGINT)
    pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
    do {
        let running = try Launcher.serve(configuration, isDefault: configPath == nil, logger: logger)
        var received: Int32 = 0
        sigwait(&stopSignals, &received)
        logger.info("stopping", ["signal": String(received)])
        running.stop()
        exit(0)
    } catch {
        logger.error("cannot start", ["error": "\(error)"])
        exit(1)
    }
}
