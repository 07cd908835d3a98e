import ArgumentParser
import PostgresNIO
import ServiceLifecycle
print("hi")
