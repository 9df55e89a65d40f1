// envit/version.hpp — the library's version (major.minor.patch). CMakeLists.txt's
// project(envit VERSION ...) must name the same version; configuring fails when they differ.
#pragma once

#define ENVIT_VERSION_MAJOR 0
#define ENVIT_VERSION_MINOR 1
#define ENVIT_VERSION_PATCH 0
#define ENVIT_VERSION_STRING "0.1.0"
