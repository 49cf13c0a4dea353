/* Finds OpenSSL's internal read/write function behind the exported wrappers. Why it matters: a
 * uprobe traps on the probed instruction and then executes it out of line, single-stepped (a
 * #DB trap, which a hypervisor intercepts: ~10 µs per hit on a Firecracker VM), unless the kernel
 * can emulate it (push, call, jmp, nop: ~0.6 µs). Debian's SSL_read starts with `sub $n,%rsp`,
 * which needs the single step; ssl_read_internal, which SSL_read, SSL_read_ex and BIO_f_ssl all
 * call, starts with pushes. Probing it instead cuts a TLS call's probe pair from ~11 µs to ~1.3 µs
 * there, and one pair covers both exported forms. Reads the ELF through libelf's mmap, so large
 * executables cost no heap. */
#include "ssl-entry.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>

/* The exported function's address, from .dynsym, else .symtab. */
static int symbol_address(Elf *elf, const char *name, GElf_Addr *out)
{
	const Elf64_Word types[] = { SHT_DYNSYM, SHT_SYMTAB };
	for (size_t t = 0; t < 2; t++) {
		Elf_Scn *scn = NULL;
		while ((scn = elf_nextscn(elf, scn)) != NULL) {
			GElf_Shdr sh;
			if (!gelf_getshdr(scn, &sh) || sh.sh_type != types[t] || sh.sh_entsize == 0)
				continue;
			Elf_Data *data = elf_getdata(scn, NULL);
			if (!data)
				continue;
			size_t n = sh.sh_size / sh.sh_entsize;
			for (size_t i = 0; i < n; i++) {
				GElf_Sym sym;
				if (!gelf_getsym(data, i, &sym) || sym.st_value == 0 ||
				    GELF_ST_TYPE(sym.st_info) != STT_FUNC)
					continue;
				const char *s = elf_strptr(elf, sh.sh_link, sym.st_name);
				if (s && strcmp(s, name) == 0) {
					*out = sym.st_value;
					return 0;
				}
			}
		}
	}
	return -1;
}

/* File offset of a code address (what a uprobe is attached by). */
static int code_offset(Elf *elf, GElf_Addr addr, uint64_t *out)
{
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || !(sh.sh_flags & SHF_EXECINSTR) ||
		    sh.sh_type != SHT_PROGBITS)
			continue;
		if (addr >= sh.sh_addr && addr < sh.sh_addr + sh.sh_size) {
			*out = addr - sh.sh_addr + sh.sh_offset;
			return 0;
		}
	}
	return -1;
}

static int read_code(int fd, Elf *elf, GElf_Addr addr, uint8_t *buf, size_t n)
{
	uint64_t off;
	if (code_offset(elf, addr, &off) != 0)
		return -1;
	return pread(fd, buf, n, off) == (ssize_t)n ? 0 : -1;
}

/* How far into `caller` to look for its call of the internal function (SSL_read: +0x1e). */
#define ST_CALLER_SCAN 96

static int find_internal(int fd, Elf *elf, const char *stub, const char *caller, uint64_t *out)
{
	GElf_Addr stub_at, caller_at;
	uint8_t b[16];
	if (symbol_address(elf, stub, &stub_at) != 0 || symbol_address(elf, caller, &caller_at) != 0 ||
	    read_code(fd, elf, stub_at, b, sizeof(b)) != 0)
		return -1;
	/* The stub is exactly "[endbr64] [sub $imm8,%rsp] call/jmp X": nothing between entry and
	 * the branch touches the argument registers, so X gets the stub's own arguments
	 * (s, buf, num, size_t *) and the stub returns what X returned. */
	size_t i = 0;
	if (b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && b[3] == 0xfa)
		i = 4;
	if (b[i] == 0x48 && b[i + 1] == 0x83 && b[i + 2] == 0xec)
		i += 4;
	if (b[i] != 0xe8 && b[i] != 0xe9)
		return -1;
	int32_t rel;
	memcpy(&rel, b + i + 1, sizeof(rel));
	GElf_Addr target = stub_at + i + 5 + (int64_t)rel;
	/* The other exported form must call the same function, or probing it would miss calls. */
	uint8_t c[ST_CALLER_SCAN];
	if (read_code(fd, elf, caller_at, c, sizeof(c)) != 0)
		return -1;
	for (size_t j = 0; j + 5 <= sizeof(c); j++) {
		if (c[j] != 0xe8)
			continue;
		memcpy(&rel, c + j + 1, sizeof(rel));
		if (caller_at + j + 5 + (int64_t)rel == target)
			return code_offset(elf, target, out);
	}
	return -1;
}

int st_ssl_internal_offset(const char *path, const char *stub, const char *caller,
			   uint64_t *file_offset)
{
#if defined(__x86_64__)
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	int err = -1;
	if (elf && elf_kind(elf) == ELF_K_ELF)
		err = find_internal(fd, elf, stub, caller, file_offset);
	if (elf)
		elf_end(elf);
	close(fd);
	return err;
#else
	(void)path;
	(void)stub;
	(void)caller;
	(void)file_offset;
	return -1;
#endif
}
