/* Test helper: LD_PRELOAD this library to create every Embree device with the configuration in
 * $LONGVIE_EMBREE_CONFIG (for example "isa=sse4.2"), so a render can be made with the kernels of
 * another CPU. embreex always calls rtcNewDevice(NULL); Embree reads its ISA only from that string.
 * $LONGVIE_EMBREE_LIBRARY is the path of the libembree4 that embreex loaded. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef void *(*new_device_fn)(const char *);

void *rtcNewDevice(const char *config) {
  const char *library = getenv("LONGVIE_EMBREE_LIBRARY");
  const char *forced = getenv("LONGVIE_EMBREE_CONFIG");
  void *handle = library ? dlopen(library, RTLD_NOW | RTLD_NOLOAD) : NULL;
  new_device_fn real = handle ? (new_device_fn)dlsym(handle, "rtcNewDevice") : NULL;
  if (!real) {
    fprintf(stderr, "embree_isa: rtcNewDevice not found in %s\n", library ? library : "(unset)");
    abort();
  }
  static int announced = 0;
  if (forced && !announced) {
    fprintf(stderr, "embree_isa: device config %s\n", forced);
    announced = 1;
  }
  return real(forced ? forced : config);
}
