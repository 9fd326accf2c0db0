// The only place in the project where setjmp/longjmp happens: libjpeg reports fatal
// errors through error_exit, which must not return. We longjmp back to the frame of
// cjpeg_decode, which owns every resource, so no longjmp ever crosses a Swift frame.
#include "cjpeg_shim.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

struct shim_error_mgr {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int decoding_scan;  // set once the scan data of a single-scan image is being decoded
  int hit_end;        // libjpeg ran out of input (JWRN_JPEG_EOF) while decoding the scan
};

static void shim_error_exit(j_common_ptr cinfo) {
  struct shim_error_mgr *err = (struct shim_error_mgr *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

static void shim_output_message(j_common_ptr cinfo) {
  (void)cinfo;  // Nothing is printed to stderr: messages reach the caller through `error`.
}

// Warnings after which libjpeg goes on with pixels it made up (grey for a truncated file,
// garbage after a bad entropy code): the decode would return a wrong image, so they are errors.
// The others (an unknown JFIF revision, extraneous bytes between markers, a bad ICC marker)
// leave the pixels intact and stay warnings.
static int shim_warning_is_fatal(int code) {
  switch (code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_BOGUS_PROGRESSION:
      return 1;
    default:
      return 0;
  }
}

static void shim_emit_message(j_common_ptr cinfo, int msg_level) {
  struct shim_error_mgr *err = (struct shim_error_mgr *)cinfo->err;
  if (msg_level >= 0) return;  // trace messages
  cinfo->err->num_warnings++;
  int code = cinfo->err->msg_code;
  if (!shim_warning_is_fatal(code)) return;
  if (code == JWRN_JPEG_EOF && err->decoding_scan) {
    // The Huffman decoder reads ahead: running out of input in a single-scan image may only mean
    // that the end-of-image marker is missing, the pixels being whole. If bits are really
    // missing, JWRN_HIT_MARKER follows and is an error.
    err->hit_end = 1;
    return;
  }
  if (code == JWRN_JPEG_EOF || (code == JWRN_HIT_MARKER && err->hit_end)) {
    snprintf(err->message, sizeof(err->message),
             "Premature end of JPEG file (the file is truncated)");
  } else {
    (*cinfo->err->format_message)(cinfo, err->message);
  }
  longjmp(err->jump, 1);  // as error_exit does: back to cjpeg_decode, which cleans up
}

static void copy_message(char *error, size_t capacity, const char *message) {
  if (error == NULL || capacity == 0) return;
  snprintf(error, capacity, "%s", message);
}

int cjpeg_decode(const unsigned char *data, size_t size, size_t max_pixels,
                 unsigned char **pixels, int *width, int *height, int *components,
                 char *error, size_t error_capacity) {
  struct jpeg_decompress_struct cinfo;
  struct shim_error_mgr jerr;
  unsigned char *volatile buffer = NULL;

  *pixels = NULL;
  *width = 0;
  *height = 0;
  *components = 0;
  if (size == 0) {
    copy_message(error, error_capacity, "empty file");
    return 1;
  }

  memset(&cinfo, 0, sizeof(cinfo));
  cinfo.err = jpeg_std_error(&jerr.pub);
  jerr.pub.error_exit = shim_error_exit;
  jerr.pub.output_message = shim_output_message;
  jerr.pub.emit_message = shim_emit_message;
  jerr.message[0] = '\0';
  jerr.decoding_scan = 0;
  jerr.hit_end = 0;
  if (setjmp(jerr.jump)) {
    copy_message(error, error_capacity, jerr.message[0] ? jerr.message : "libjpeg error");
    jpeg_destroy_decompress(&cinfo);
    free(buffer);
    return 1;
  }

  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, (unsigned char *)data, (unsigned long)size);
  jpeg_read_header(&cinfo, TRUE);
  int gray = cinfo.jpeg_color_space == JCS_GRAYSCALE;
  cinfo.out_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_calc_output_dimensions(&cinfo);
  size_t w = cinfo.output_width, h = cinfo.output_height;
  size_t c = (size_t)cinfo.output_components;
  if (w == 0 || h == 0 || w > 65535 || h > 65535 || w * h > max_pixels) {
    char msg[160];
    snprintf(msg, sizeof(msg), "image of %zux%zu pixels exceeds the limit of %zu pixels", w, h,
             max_pixels);
    copy_message(error, error_capacity, msg);
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  buffer = malloc(w * h * c);
  if (buffer == NULL) {
    copy_message(error, error_capacity, "out of memory");
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  // A progressive (multi-scan) image reads all its scans in jpeg_start_decompress: running out
  // of input there means missing scans, always an error.
  jerr.decoding_scan = !jpeg_has_multiple_scans(&cinfo);
  jpeg_start_decompress(&cinfo);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = buffer + (size_t)cinfo.output_scanline * w * c;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);

  *pixels = buffer;
  *width = (int)w;
  *height = (int)h;
  *components = (int)c;
  return 0;
}

void cjpeg_free(unsigned char *pixels) { free(pixels); }
