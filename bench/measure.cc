// Benchmark helper: runs a command (stdin from a file or /dev/null, output discarded) and prints
// "<wall ms> <peak RSS KiB> <exit code>". Small and in C++ so that the process it forks carries
// almost nothing into the command's peak RSS (exec keeps the pre-exec high-water mark).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: measure STDIN-FILE|- COMMAND [ARGS...]\n");
    return 2;
  }
  const char* input = std::strcmp(argv[1], "-") == 0 ? "/dev/null" : argv[1];
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    int in = open(input, O_RDONLY);
    int null = open("/dev/null", O_WRONLY);
    dup2(in, 0);
    dup2(null, 1);
    execvp(argv[2], argv + 2);
    _exit(127);
  }
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  auto t1 = std::chrono::steady_clock::now();
  double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  std::printf("%.3f %ld %d\n", ms, usage.ru_maxrss, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return 0;
}
