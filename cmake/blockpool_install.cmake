include(CMakePackageConfigHelpers)
install(TARGETS blockpool EXPORT blockpoolTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(BLOCKPOOL_HAS_ASIO)
  install(TARGETS blockpool_asio EXPORT blockpoolTargets)
endif()
if(BLOCKPOOL_HAS_BOOST_ASIO)
  install(TARGETS blockpool_boost_asio EXPORT blockpoolTargets)
endif()
install(DIRECTORY include/blockpool DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT blockpoolTargets NAMESPACE blockpool::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/blockpool)
configure_package_config_file(cmake/blockpoolConfig.cmake.in
  ${PROJECT_BINARY_DIR}/blockpoolConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/blockpool)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/blockpoolConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/blockpoolConfig.cmake
  ${PROJECT_BINARY_DIR}/blockpoolConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/blockpool)
