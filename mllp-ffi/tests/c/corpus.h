/* Reading the sample corpus in the C API test programs. Define _POSIX_C_SOURCE before
 * including it (for dirent.h). */
#ifndef MLLP_TEST_CORPUS_H
#define MLLP_TEST_CORPUS_H

#include <dirent.h>
#include <stdint.h>

#include "check.h"

/* MLLP_TEST_CORPUS, or NULL after printing that the corpus part is skipped. With
 * MLLP_REQUIRE_ALL=1 (set by CI) a missing corpus fails the program instead. */
static inline const char *corpus_dir(void) {
    const char *dir = getenv("MLLP_TEST_CORPUS");
    if (!dir || !*dir) {
        const char *all = getenv("MLLP_REQUIRE_ALL");
        if (all && strcmp(all, "1") == 0) {
            fprintf(stderr, "MLLP_TEST_CORPUS is not set and MLLP_REQUIRE_ALL=1: failing\n");
            exit(1);
        }
        printf("MLLP_TEST_CORPUS is not set: skipping the corpus part\n");
        return NULL;
    }
    return dir;
}

/* Calls each(path, data, len, ctx) for every *.hl7 file directly in `dir`, read whole into a
 * malloc'd buffer with one spare byte, which `each` owns and must free. Returns the number of
 * files, or -1 when `dir` cannot be opened. */
static inline long for_each_hl7(const char *dir,
                                void (*each)(const char *path, uint8_t *data, size_t len,
                                             void *ctx),
                                void *ctx) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    long files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t nlen = strlen(e->d_name);
        if (nlen < 4 || strcmp(e->d_name + nlen - 4, ".hl7") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *fp = fopen(path, "rb");
        CHECK(fp != NULL);
        CHECK(fseek(fp, 0, SEEK_END) == 0);
        long size = ftell(fp);
        CHECK(size >= 0 && fseek(fp, 0, SEEK_SET) == 0);
        uint8_t *data = malloc((size_t)size + 1);
        CHECK(data != NULL);
        CHECK(fread(data, 1, (size_t)size, fp) == (size_t)size);
        fclose(fp);
        each(path, data, (size_t)size, ctx);
        files++;
    }
    closedir(d);
    return files;
}

#endif
