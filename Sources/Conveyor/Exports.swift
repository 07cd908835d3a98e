// The pure types (states, reasons, retry policy, transitions) are part of the public API.
@_exported import ConveyorCore
