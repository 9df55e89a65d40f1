envit_add_test(test_trainer test_trainer.cpp)
