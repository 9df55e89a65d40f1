// Faults a long CPU run meets: a split whose geometry or labels do not fit the model, non-finite
// values (checkpoint, normalisation, training) reported with where they came from, a write past the
// file-size limit or onto a full file system (clear IoError, no temporary left, previous checkpoint
// intact and loadable), SIGINT/SIGTERM (first: flag; second: default action), the directory lock.
#include <catch2/catch.hpp>
#include <signal.h>
#include <dirent.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <numeric>

#include "skip.hpp"
#include "envit/data/idx.hpp"
#include "envit/io/dir_lock.hpp"
#include "envit/train/interrupt.hpp"
#include "envit/train/trainer.hpp"
#include "io/io_util.hpp"

using namespace envit;
using envit::testing::TempDir;

namespace {

// n images of s x s pixels (class k: a bright pixel row k) and labels in [0, classes).
void write_split(const TempDir& t, const std::string& pre, int n, int s, int classes, int bad_label = -1) {
  std::vector<std::uint8_t> im(std::size_t(n) * s * s, 10), lb(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    lb[std::size_t(i)] = std::uint8_t(i % classes);
    for (int x = 0; x < s; ++x) im[std::size_t(i) * s * s + std::size_t(i % classes) * s + x] = 250;
  }
  if (bad_label >= 0) lb[1] = std::uint8_t(bad_label);
  idx_write(t.file(pre + "-images-idx3-ubyte"), {n, s, s}, im.data(), false);
  idx_write(t.file(pre + "-labels-idx1-ubyte"), {n}, lb.data(), false);
}

VitConfig cfg28() {
  VitConfig c;
  c.image_size = 28; c.channels = 1; c.patch = 7; c.dim = 16; c.depth = 2; c.heads = 2; c.mlp_hidden = 32;
  c.classes = 10; c.exits = {1, 2};
  return c;
}

TrainOptions opts() {
  TrainOptions o;
  o.batch = 8; o.epochs = 1; o.lr = 1e-3; o.seed = 3;
  return o;
}

std::vector<std::int64_t> iota_n(std::int64_t n) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

TEST_CASE("a test split of 27x27 images is refused against a 28x28 model before training", "[fault][data]") {
  TempDir t;
  write_split(t, "train", 16, 28, 10);
  write_split(t, "t10k", 16, 27, 10);
  Dataset train = fashion_mnist_load(t.path, true), test = fashion_mnist_load(t.path, false);
  const VitConfig c = cfg28();
  REQUIRE_NOTHROW(train.check_fits(c.channels, c.image_size, c.image_size, c.classes, "the model"));
  std::string m = envit::testing::message_of<ShapeError>(
      [&] { test.check_fits(c.channels, c.image_size, c.image_size, c.classes, "the model"); });
  CHECK_THAT(m, Catch::Contains("fashion-mnist/test") && Catch::Contains("1x27x27") && Catch::Contains("1x28x28"));
  // The evaluation refuses it too, instead of reading images at the wrong size.
  ViTParams<float> P(c, false);
  P.init(1);
  std::int64_t n = 0;
  m = envit::testing::message_of<ShapeError>([&] { evaluate_exits(P, test, iota_n(test.n), Normalizer::identity(1), 8, &n); });
  CHECK_THAT(m, Catch::Contains("1x27x27"));
  // And the trainer, when the training split is the mis-sized one.
  m = envit::testing::message_of<ShapeError>([&] { Trainer tr(c, opts(), test, iota_n(test.n), channel_stats(test)); });
  CHECK_THAT(m, Catch::Contains("1x27x27"));
}

TEST_CASE("labels beyond the model's classes are refused with the sample named", "[fault][data]") {
  TempDir t;
  write_split(t, "t10k", 16, 28, 10);
  Dataset test = fashion_mnist_load(t.path, false);
  std::string m = envit::testing::message_of<ValueError>([&] { test.check_fits(1, 28, 28, 5, "the model"); });
  CHECK_THAT(m, Catch::Contains("label 5 of sample 5") && Catch::Contains("[0, 5)"));
  test.labels[3] = -1;  // a hand-built dataset with a negative label
  m = envit::testing::message_of<ValueError>([&] { test.check_fits(1, 28, 28, 10, "the model"); });
  CHECK_THAT(m, Catch::Contains("label -1 of sample 3"));
}

TEST_CASE("a normaliser whose values overflow float is refused", "[fault][nonfinite]") {
  std::string m = envit::testing::message_of<ValueError>([] { Normalizer n({0.5}, {1e-300}); });
  CHECK_THAT(m, Catch::Contains("channel 0 maps pixel 0") && Catch::Contains("inf"));
  CHECK_NOTHROW(Normalizer({0.5}, {1e-3}));
}

TEST_CASE("NaN or Inf in a loaded checkpoint names the tensor and element", "[fault][nonfinite]") {
  TempDir t;
  const VitConfig c = cfg28();
  ViTParams<float> P(c, false);
  P.init(2);
  AdamWState<float> opt(P.size());
  const ParamEntry& e = P.table()[3];
  P.values()[e.offset + 5] = std::numeric_limits<float>::quiet_NaN();
  checkpoint_save<float>(t.file("nan.safetensors"), P, &opt, {});
  StFile f = safetensors_read(t.file("nan.safetensors"));
  ViTParams<float> Q(c, false);
  AdamWState<float> qopt(Q.size());
  std::string m = envit::testing::message_of<IoError>([&] { checkpoint_restore(f, Q, qopt); });
  CHECK_THAT(m, Catch::Contains("parameter '" + e.name + "'") && Catch::Contains("element 5 = nan") &&
                    Catch::Contains("nan.safetensors"));
  m = envit::testing::message_of<IoError>([&] { load_weights(f, Q, false); });
  CHECK_THAT(m, Catch::Contains("tensor '" + e.name + "'") && Catch::Contains("element 5 is nan"));
  // An optimiser moment.
  P.values()[e.offset + 5] = 0.f;
  opt.v.data()[P.table()[0].offset] = std::numeric_limits<float>::infinity();
  checkpoint_save<float>(t.file("inf.safetensors"), P, &opt, {});
  m = envit::testing::message_of<IoError>([&] { checkpoint_restore(safetensors_read(t.file("inf.safetensors")), Q, qopt); });
  CHECK_THAT(m, Catch::Contains("optimizer.exp_avg_sq of '" + P.table()[0].name + "'") && Catch::Contains("element 0 = inf"));
}

TEST_CASE("a non-finite loss in training names the step and the exit", "[fault][nonfinite]") {
  TempDir t;
  write_split(t, "train", 16, 28, 10);
  Dataset train = fashion_mnist_load(t.path, true);
  TrainOptions o = opts();
  o.obj.scheme = Scheme::vit_ee;  // no distillation: only the last exit's own loss sees its head
  Trainer tr(cfg28(), o, train, iota_n(train.n), channel_stats(train));
  tr.step_once();
  // Exit 2 is the last exit: its head (`head.*`) gets a NaN weight.
  tr.params().value("head.weight")[0] = std::numeric_limits<float>::quiet_NaN();
  std::string m = envit::testing::message_of<NonFiniteError>([&] { tr.step_once(); });
  CHECK_THAT(m, Catch::Contains("at step 1") && Catch::Contains("exit 2 (after block 2): ce = nan"));
  CHECK_THAT(m, !Catch::Contains("exit 1 "));
  CHECK(tr.step() == 1);
  // A gradient arena with an Inf: the tensor and element are named.
  ViTParams<float>& P = tr.params();
  const ParamEntry& e = P.table()[2];
  P.zero_grads();
  P.grads()[e.offset + 1] = std::numeric_limits<float>::infinity();
  CHECK_THAT(non_finite_in(P, static_cast<const float*>(P.grads()), "gradient of"),
             Catch::StartsWith("gradient of '" + e.name + "' [") && Catch::EndsWith("element 1 = inf"));
}

namespace {

// Runs f in a forked child and returns its wait status (f's return value is the exit code).
template <class F>
int in_child(F&& f) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int rc = 99;
    try {
      rc = f();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      rc = 98;
    }
    ::_exit(rc);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return status;
}

StFile big_file(std::size_t floats, float value) {
  StFile f;
  std::vector<float> v(floats, value);
  f.add<float>("w", v.data(), {std::int64_t(floats)});
  return f;
}

}  // namespace

TEST_CASE("a write past the file-size limit fails with EFBIG, removes its temporary, keeps the old file",
          "[fault][disk]") {
  TempDir t;
  const std::string path = t.file("last.safetensors");
  safetensors_write(path, big_file(1000, 1.f));  // the previous checkpoint, ~4 KB
  const std::string before = envit::testing::read_bytes(path);
  // In a child: SIGXFSZ ignored (as `envit` does), a 16 KiB limit, a 400 KB write.
  int status = in_child([&] {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl {16384, 16384};
    if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) return 97;
    try {
      safetensors_write(path, big_file(100000, 2.f));
    } catch (const IoError& e) {
      const std::string m = e.what();
      return m.find("File too large") != std::string::npos && m.find("last.safetensors") != std::string::npos ? 0 : 2;
    }
    return 1;  // the write must not succeed
  });
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(t.entries() == std::vector<std::string>{"last.safetensors"});  // no last.safetensors.tmp.<pid>
  CHECK(envit::testing::read_bytes(path) == before);
  CHECK(safetensors_read(path).get<float>("w") == std::vector<float>(1000, 1.f));
}

TEST_CASE("a write onto a full file system fails with ENOSPC and keeps the old file", "[fault][disk]") {
  // A 64 KiB tmpfs in a private mount namespace (needs unprivileged user namespaces; skipped without).
  TempDir t;
  const std::string mnt = t.file("small"), path = mnt + "/last.safetensors";
  std::filesystem::create_directory(mnt);
  int status = in_child([&] {
    if (::unshare(CLONE_NEWNS) != 0) {  // not root: a user namespace mapping our ids to root
      const std::string uid = "0 " + std::to_string(::getuid()) + " 1", gid = "0 " + std::to_string(::getgid()) + " 1";
      if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return 77;
      auto put = [](const char* f, const std::string& v) {
        FILE* o = std::fopen(f, "w");
        bool ok = o && std::fputs(v.c_str(), o) >= 0;
        if (o) ok = std::fclose(o) == 0 && ok;
        return ok;
      };
      if (!put("/proc/self/setgroups", "deny") || !put("/proc/self/uid_map", uid) || !put("/proc/self/gid_map", gid))
        return 77;
    }
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 77;
    if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) return 77;
    safetensors_write(path, big_file(1000, 1.f));
    try {
      safetensors_write(path, big_file(100000, 2.f));
      return 1;
    } catch (const IoError& e) {
      if (std::string(e.what()).find("No space left on device") == std::string::npos) return 2;
    }
    DIR* d = ::opendir(mnt.c_str());
    int entries = 0;
    while (const dirent* ent = ::readdir(d)) entries += ent->d_name[0] != '.';
    ::closedir(d);
    if (entries != 1) return 3;  // only last.safetensors, no temporary
    return safetensors_read(path).get<float>("w") == std::vector<float>(1000, 1.f) ? 0 : 4;
  });
  REQUIRE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) {
    ENVIT_SKIP("cannot mount a tmpfs here (no user namespaces); the file-size-limit test covers the write path");
  }
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("first SIGINT/SIGTERM sets the stop flag, a second one stops at once", "[fault][signal]") {
  {
    StopSignals stop;
    CHECK_FALSE(stop.requested());
    ::raise(SIGTERM);
    CHECK(stop.requested());
    CHECK(stop.received() == SIGTERM);
  }
  int status = in_child([] {
    StopSignals stop;
    ::raise(SIGINT);
    if (!stop.requested()) return 1;
    ::raise(SIGINT);  // the default action: the process ends here
    return 2;
  });
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGINT);
  // The previous dispositions come back when the object dies.
  struct sigaction sa {};
  ::sigaction(SIGINT, nullptr, &sa);
  CHECK(sa.sa_handler != detail::envit_stop_handler);
}

TEST_CASE("a second lock on an output directory is refused; stale temporaries are removed", "[fault][lock]") {
  TempDir t;
  {
    io::DirLock a(t.path);
    std::string m = envit::testing::message_of<IoError>([&] { io::DirLock b(t.path); });
    CHECK_THAT(m, Catch::Contains("is in use by another envit process") &&
                      Catch::Contains("pid " + std::to_string(::getpid())));
    envit::testing::write_bytes(t.file("last.safetensors.tmp.4242"), "partial");
    envit::testing::write_bytes(t.file("notes.tmp.txt"), "kept");
    CHECK(a.remove_stale_temporaries() == std::vector<std::string>{"last.safetensors.tmp.4242"});
    CHECK(envit::testing::read_bytes(t.file("notes.tmp.txt")) == "kept");
  }
  CHECK_NOTHROW(io::DirLock(t.path));  // released with its holder
}
