# Writes a C++ source holding the bytes of a file, so an asset edited as a
# real file (the dashboard page) is built into forkd:
#   cmake -DINPUT=page.html -DOUTPUT=page.cc -DSYMBOL=kPage -P embed_file.cmake
# defines forkd::admin::${SYMBOL} (the bytes, NUL-terminated) and
# ${SYMBOL}Size (without the NUL).
get_filename_component(input_name "${INPUT}" NAME)
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
# Lines of 16 bytes keep the generated file readable in a diff tool.
string(REGEX REPLACE "(('[^']+',){16})" "\\1\n  " bytes "${bytes}")
file(WRITE "${OUTPUT}.tmp"
  "// Generated from ${input_name} by embed_file.cmake: do not edit.\n"
  "#include <cstddef>\n\n"
  "namespace forkd::admin {\n\n"
  "extern const char ${SYMBOL}[] = {\n  ${bytes}'\\0'};\n"
  "extern const size_t ${SYMBOL}Size = ${size};\n\n"
  "}  // namespace forkd::admin\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
