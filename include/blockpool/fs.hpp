// blockpool/fs.hpp: files and directories through the pool, as Asio
// asynchronous operations (standalone Asio; <blockpool/boost_asio.hpp> gives
// the same in blockpool::boost_asio::fs for Boost.Asio). CMake target
// blockpool::asio.
//
//   std::string text = co_await blockpool::fs::async_read_file(pool, path, asio::use_awaitable);
//   blockpool::fs::File log = co_await blockpool::fs::File::async_open(
//       pool, "app.log", blockpool::fs::OpenMode::append | blockpool::fs::OpenMode::create,
//       asio::use_awaitable);
//   co_await log.async_write(std::string("started\n"), asio::use_awaitable);  // write-behind
//
// Every function
//   * takes, first, a blockpool::Pool or a blockpool::Handle (a lane's
//     handle too: its tasks then count against the lane's cap) and runs the
//     blocking calls there, never on the caller's thread;
//   * is an Asio initiating function: any completion token (callbacks,
//     use_future, use_awaitable, deferred), the completion posted to the
//     handler's associated executor with work held on it, exactly as
//     blockpool::async_spawn_blocking (<blockpool/asio.hpp>), which runs
//     every task here;
//   * honours the handler's cancellation slot as async_spawn_blocking does:
//     an operation whose task has not started never runs it and completes
//     at once with a cancelled blockpool::JoinError; a started task is not
//     interrupted (async_read_file stops between two 256 KiB reads, failing
//     with std::errc::operation_canceled);
//   * completes with a std::exception_ptr first: null on success, else a
//     std::filesystem::filesystem_error naming the path (and the OS error
//     as code()), a std::system_error, or a JoinError (cancelled, or the
//     pool shut down or could not start a thread).
//
// Whole files, paths, directories (one task each; signatures as the
// std::filesystem namesakes', with the pool first and the token last):
//   async_read_file(pool, path, token)              -> std::string
//       the whole file; a regular file in one buffer of its size.
//   async_write_file(pool, path, std::string, token) -> void
//       creates or truncates, writes everything, closes (a close error counts).
//   async_file_size(pool, path, token)              -> std::uintmax_t
//   async_create_directories(pool, path, token)     -> bool (created any)
//   async_rename(pool, from, to, token)             -> void
//   async_remove(pool, path, token)                 -> bool (existed)
//   async_copy_file(pool, from, to, [copy_options,] token) -> bool (copied)
//   async_read_dir(pool, dir, token)  -> std::vector<std::filesystem::directory_entry>
//       every entry (not "." and ".."; unsorted), listed in batches of 512
//       entries, one task each: a big directory never holds a thread for
//       long, and cancellation (of any type) takes effect between batches.
//
// File: an open descriptor whose operations run on the pool.
//   File::async_open(pool, path, OpenMode flags, token) -> File
//       OpenMode: read, write, create (mode 0666 & ~umask), truncate, append
//       (implies write), combined with |. The File's later tasks run on the
//       same pool or lane handle.
//   f.async_write(std::string data, token) -> void
//       Write-behind: completes (posted, without waiting for a thread) once
//       `data` is queued behind every earlier write for a *mandatory* task,
//       which writes it at the file's offset (the end with append). Writes
//       reach the file in the order their async_write was initiated. So an
//       acknowledged write is never lost: it is written even if the pool
//       shuts down right after, or the File is destroyed. If a background
//       write fails, the data queued behind it is dropped (never written out
//       of order) and the next operation (async_write, async_flush,
//       async_sync, async_read_some) fails with that error, once; the File
//       then works again. An async_write that fails carries no data to the
//       file. Queued data is held in memory until written: a writer faster
//       than the disk should async_flush now and then.
//   f.async_flush(token) -> void
//       Completes once every write acknowledged before it is in the OS
//       (written to the descriptor), or with the error of one that failed.
//   f.async_sync(token) -> void
//       async_flush, then fsync(2): on stable storage.
//   f.async_read_some(max_bytes, token) -> std::string
//       One read(2) of at most max_bytes at the file's offset, after the
//       queued writes; empty at end of file.
//   Cancelling async_flush, async_sync or async_read_some before its task
//   starts leaves the queued writes queued (they are mandatory).
//   The destructor (and move assignment) lets the queued writes finish and
//   closes the descriptor on a pool thread after them; it never blocks. An
//   error they meet then is lost: async_flush or async_sync first to see it.
//   is_open(), native_handle() (the descriptor, -1 if not open).
//   A default-constructed or moved-from File is not open: its operations
//   fail with std::errc::bad_file_descriptor.
//
// Threads: every blocking call (open, read, write, fsync, close, stat,
// readdir, ...) runs on a pool thread; the initiating thread only queues.
// One File's tasks use its descriptor one at a time, in the order they
// started. Use one File from one thread (or strand) at a time, as an Asio
// I/O object; different Files, and every other function, from any thread.
// Reads and writes that block forever (a FIFO with no peer) hold their pool
// thread, and that File's later operations, until they return.
#pragma once

#include <asio/compose.hpp>
#include <asio/post.hpp>

#include "blockpool/asio.hpp"

#define BLOCKPOOL_ASIO_NET ::asio
#define BLOCKPOOL_ASIO_IMPL asio_standalone
#include "blockpool/detail/asio/fs.ipp"
#undef BLOCKPOOL_ASIO_IMPL
#undef BLOCKPOOL_ASIO_NET

namespace blockpool {
// Files and directories through the pool, for standalone Asio.
namespace fs = detail::asio_standalone::fs;
}  // namespace blockpool
