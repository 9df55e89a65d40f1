// libFuzzer harness: cifar_read on arbitrary bytes as CIFAR-10, CIFAR-100 fine and coarse (the
// first byte chooses). A loaded dataset must pass Dataset::check(); anything else throws IoError.
#include <cstdlib>

#include "envit/data/cifar.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static envit::fuzz::MemFile mem;
  if (size < 1) return 0;
  const envit::CifarKind kinds[3] = {envit::CifarKind::cifar10, envit::CifarKind::cifar100_fine,
                                     envit::CifarKind::cifar100_coarse};
  try {
    envit::Dataset d = envit::cifar_read({mem.set(data + 1, size - 1)}, kinds[data[0] % 3]);
    d.check();
  } catch (const envit::IoError&) {
  }
  return 0;
}
